/**
 * llama.cpp's layer-to-device rule, reproduced exactly, and its inverse: the `gpuLayers`
 * and per-device reported memory (the RPC shim's `host:port@MiB`) that make llama.cpp place
 * exactly the layer counts a plan asks for. node-llama-cpp has no `tensor_split`, so the
 * reported free memory is the only lever on how layers are shared among RPC devices.
 *
 * The rule (llama.cpp `llama_model_base::load_tensors`, bundled with node-llama-cpp 3.22;
 * node-llama-cpp passes a numeric `gpuLayers`, clamped to [0, n_layer + 1], as n_gpu_layers):
 *
 *   splits[i]   = cumulative sum of the devices' free bytes, in float32, divided by the total
 *   i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0)
 *   act         = min(n_gpu_layers, n_layer + 1)
 *   layer il in 0..n_layer (il = n_layer is the output layer):
 *     il < i_gpu_start            -> host CPU
 *     otherwise                   -> device upper_bound(splits, float(il - i_gpu_start) / act)
 *                                    (the first device whose cumulative fraction exceeds it)
 *
 * So `gpuLayers = G` offloads the last G - 1 repeating layers plus the output layer, the
 * devices take consecutive runs in their listed order, and the output layer lands on the
 * last device. The input layer always stays on the host.
 *
 * Pure: no I/O.
 */

/** Where llama.cpp puts a model's layers for a given gpuLayers and device memory. */
export interface LlamaLayerAssignment {
  /** Repeating layers on the host CPU (always the first ones). */
  hostLayers: number;
  /** Repeating layers on each device, in device order. */
  deviceLayers: number[];
  /** Device index holding the output layer; null when it stays on the host. */
  outputDevice: number | null;
}

const MIB = 1024 * 1024;

/**
 * llama.cpp's assignment, float32 arithmetic included. `deviceFreeBytes` is what each
 * device reports (with the shim: MiB * 2^20). A device reporting 0 bytes would fall back to
 * the host's free memory in llama.cpp; callers here never report 0, so that case is refused.
 */
export function llamaCppLayerAssignment(layerCount: number, gpuLayers: number, deviceFreeBytes: readonly number[]): LlamaLayerAssignment {
  if (!Number.isInteger(layerCount) || layerCount < 1) throw new RangeError(`layerCount must be an integer >= 1, got ${layerCount}`);
  if (!Number.isInteger(gpuLayers) || gpuLayers < 0) throw new RangeError(`gpuLayers must be an integer >= 0, got ${gpuLayers}`);
  if (deviceFreeBytes.some((bytes) => !(bytes > 0))) throw new RangeError("every device must report free memory above 0");
  // node-llama-cpp clamps numeric gpuLayers to its totalLayers (blocks + output).
  const nGpuLayers = Math.min(gpuLayers, layerCount + 1);
  const splits: number[] = [];
  let sum = 0;
  for (const bytes of deviceFreeBytes) {
    sum = Math.fround(sum + Math.fround(bytes));
    splits.push(sum);
  }
  for (let i = 0; i < splits.length; i++) splits[i] = Math.fround(splits[i]! / sum);

  const gpuStart = Math.max(layerCount + 1 - nGpuLayers, 0);
  const active = deviceFreeBytes.length === 0 ? 0 : Math.min(nGpuLayers, layerCount + 1);
  const deviceOf = (layer: number): number | null => {
    if (layer < gpuStart || layer - gpuStart >= active) return null;
    // float / int in C++: both exact in float32, and rounding the double quotient to float is
    // the same as a float division (double has more than 2 * 24 + 2 bits).
    const position = Math.fround((layer - gpuStart) / active);
    const index = splits.findIndex((split) => split > position);
    // llama.cpp would throw out_of_range from devices.at(); the last split is 1, so it cannot.
    if (index < 0) throw new Error("llama.cpp split rule: no device for a layer position below 1");
    return index;
  };

  const assignment: LlamaLayerAssignment = { hostLayers: 0, deviceLayers: deviceFreeBytes.map(() => 0), outputDevice: deviceOf(layerCount) };
  for (let layer = 0; layer < layerCount; layer++) {
    const device = deviceOf(layer);
    if (device === null) assignment.hostLayers++;
    else assignment.deviceLayers[device]!++;
  }
  return assignment;
}

/** What the runner passes so llama.cpp realises a plan: `gpuLayers` and each device's `@MiB`. */
export interface LlamaSplitSettings {
  gpuLayers: number;
  /** The `@MiB` of each RPC endpoint, in stage order. */
  reportedMiB: number[];
}

/**
 * The settings that give the host `hostLayers` repeating layers and device j
 * `deviceLayers[j]` (each at least 1) with the output layer on the last device.
 *
 * gpuLayers G = sum(deviceLayers) + 1 (the output counts as one). Each device's share is
 * chosen so its cumulative split fraction falls halfway between two layer positions: with
 * T_j the layers on devices 0..j, the cumulative weight is 2 * T_j - 1 out of 2 * G for every
 * device but the last, which ends at 2 * G. The boundary then sits half a layer away from
 * either neighbour, so rounding anywhere cannot move a layer. The weights are multiplied by
 * one whole unit so the devices together report at least `minTotalMiB` (node-llama-cpp
 * refuses a gpuLayers count whose estimated needs exceed the reported free memory).
 */
export function llamaSplitSettings(hostLayers: number, deviceLayers: readonly number[], minTotalMiB = 0): LlamaSplitSettings {
  if (!Number.isInteger(hostLayers) || hostLayers < 0) throw new RangeError(`hostLayers must be an integer >= 0, got ${hostLayers}`);
  if (deviceLayers.length === 0) throw new RangeError("a split needs at least one device");
  if (deviceLayers.some((layers) => !Number.isInteger(layers) || layers < 1)) throw new RangeError("every device must hold at least one whole layer");
  const offloaded = deviceLayers.reduce((total, layers) => total + layers, 0);
  const gpuLayers = offloaded + 1;
  const weights: number[] = [];
  let previousCumulative = 0;
  let layersSoFar = 0;
  deviceLayers.forEach((layers, index) => {
    layersSoFar += layers;
    const cumulative = index === deviceLayers.length - 1 ? 2 * gpuLayers : 2 * layersSoFar - 1;
    weights.push(cumulative - previousCumulative);
    previousCumulative = cumulative;
  });
  const unit = Math.max(1, Math.ceil(minTotalMiB / (2 * gpuLayers)));
  const reportedMiB = weights.map((weight) => weight * unit);

  // The rule above is the contract; check it rather than trust the derivation.
  const check = llamaCppLayerAssignment(hostLayers + offloaded, gpuLayers, reportedMiB.map((mib) => mib * MIB));
  const matches = check.hostLayers === hostLayers && check.outputDevice === deviceLayers.length - 1 && check.deviceLayers.every((layers, index) => layers === deviceLayers[index]);
  if (!matches) throw new Error(`llama.cpp split settings do not realise host ${hostLayers} + [${deviceLayers.join(", ")}]`);
  return { gpuLayers, reportedMiB };
}

