/**
 * The cluster-wide model list behind `/v1/models`: every model on this node or on a reachable
 * peer, one entry per file (deduplicated by sha256), each naming the nodes that hold it.
 *
 * An entry this node holds shows its local descriptor (id, aliases, GGUF facts); a model only
 * peers hold shows what peers publish: id, size and hash (`createdAt` 0, no GGUF facts). Its id
 * is the name most holders use (ties: the smallest), so one name works on any node. Files not
 * hashed yet cannot be matched across nodes and are listed per node.
 *
 * Pure: no I/O.
 */

import type { ClusterSnapshot } from "../../scheduler/clusterSnapshot.js";
import type { ModelDescriptor, ModelInfo, ModelPlacementInfo } from "../engine/types.js";

interface Group {
  key: string;
  sha256: string | null;
  local: ModelDescriptor | undefined;
  sizeBytes: number;
  holders: ModelPlacementInfo["nodes"];
}

export function clusterModelList(snapshot: ClusterSnapshot, localModels: readonly ModelDescriptor[]): ModelInfo[] {
  const localById = new Map(localModels.map((model) => [model.id, model]));
  const groups = new Map<string, Group>();
  const order: string[] = [];
  // This node first (its ids lead the list, as before routing), then peers by node id.
  const nodes = [...snapshot.nodes].filter((node) => node.reachable).sort((a, b) => Number(b.local) - Number(a.local) || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  for (const node of nodes) {
    for (const model of node.models) {
      const key = model.sha256 ?? `${node.nodeId}\u0000${model.id}`;
      let group = groups.get(key);
      if (group === undefined) {
        group = { key, sha256: model.sha256, local: undefined, sizeBytes: model.sizeBytes, holders: [] };
        groups.set(key, group);
        order.push(key);
      }
      if (node.local) group.local ??= localById.get(model.id);
      if (!group.holders.some((holder) => holder.nodeId === node.nodeId && holder.modelId === model.id)) {
        group.holders.push({ nodeId: node.nodeId, modelId: model.id, loaded: node.loadedModels.includes(model.id) });
      }
    }
  }
  // A local model the snapshot does not list (the view is older than the registry) still shows.
  const listed = new Set([...groups.values()].flatMap((group) => (group.local ? [group.local.id] : [])));
  const localNode = snapshot.nodes.find((node) => node.local);
  for (const model of localModels) {
    if (listed.has(model.id) || localNode === undefined) continue;
    if (localNode.models.some((entry) => entry.id === model.id)) continue;
    const key = `${localNode.nodeId}\u0000${model.id}`;
    groups.set(key, { key, sha256: null, local: model, sizeBytes: model.sizeBytes, holders: [{ nodeId: localNode.nodeId, modelId: model.id, loaded: localNode.loadedModels.includes(model.id) }] });
    order.push(key);
  }
  return order.map((key) => infoOf(groups.get(key)!));
}

function infoOf(group: Group): ModelInfo {
  const cluster: ModelPlacementInfo = { sha256: group.sha256, nodes: group.holders };
  if (group.local !== undefined) {
    const { path: _path, ...info } = group.local;
    return { ...info, cluster };
  }
  return { id: commonestId(group.holders), aliases: [], sizeBytes: group.sizeBytes, createdAt: 0, cluster };
}

function commonestId(holders: ModelPlacementInfo["nodes"]): string {
  const counts = new Map<string, number>();
  for (const holder of holders) counts.set(holder.modelId, (counts.get(holder.modelId) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
}

/** The entry a client's model name refers to: an id, a local alias, any holder's id, or a sha256. */
export function findClusterModel(models: readonly ModelInfo[], name: string): ModelInfo | undefined {
  return (
    models.find((model) => model.id === name) ??
    models.find((model) => model.aliases.includes(name)) ??
    models.find((model) => model.cluster?.nodes.some((holder) => holder.modelId === name) === true) ??
    models.find((model) => model.cluster?.sha256 === name)
  );
}
