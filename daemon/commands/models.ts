/**
 * This machine's model files, for `hearth models` and `hearth pull hf:...`: listed through
 * the same registry the daemon uses, and downloaded into the models dir by node-llama-cpp's
 * downloader (ipull: resume, split files). The registry and node-llama-cpp are imported only
 * when used, which keeps the other commands quick to start.
 */

import { errors } from "../../protocol/errors.js";
import type { ModelDescriptor } from "../engine/types.js";
import { createCliLogger } from "../log.js";
import { configFor, type ConfigChoice } from "./configChoice.js";

type ModelsChoice = ConfigChoice & { modelsDir?: string | undefined };

export interface ModelDownload {
  uri: string;
  directory: string;
  fileName: string;
  signal: AbortSignal;
  onProgress: (doneBytes: number, totalBytes: number) => void;
}

function modelsConfigFor(choice: ModelsChoice): ReturnType<typeof configFor> {
  return configFor(choice, choice.modelsDir === undefined ? {} : { modelsDir: choice.modelsDir });
}

export const models = {
  async list(choice: ModelsChoice): Promise<{ modelsDir: string; models: ModelDescriptor[] }> {
    const config = await modelsConfigFor(choice);
    const { ModelRegistry } = await import("../models/ModelRegistry.js");
    const registry = new ModelRegistry({ modelsDir: config.modelsDir, extraPaths: config.models.extraPaths, aliases: config.models.aliases, logger: createCliLogger() });
    return { modelsDir: config.modelsDir, models: await registry.list() };
  },

  async directory(choice: ModelsChoice): Promise<string> {
    return (await modelsConfigFor(choice)).modelsDir;
  },

  async downloader(): Promise<(download: ModelDownload) => Promise<{ path: string; sizeBytes: number }>> {
    const { createModelDownloader } = await import("node-llama-cpp");
    return async (download) => {
      const downloader = await createModelDownloader({
        modelUri: download.uri,
        dirPath: download.directory,
        fileName: download.fileName,
        showCliProgress: false,
        skipExisting: true,
        onProgress: ({ totalSize, downloadedSize }) => download.onProgress(downloadedSize, totalSize),
      });
      const savedPath = await downloader.download({ signal: download.signal });
      // node-llama-cpp resolves (with the path it would have written) when cancelled mid-transfer.
      if (download.signal.aborted) throw errors.cancelled(`download of ${download.uri} cancelled`);
      return { path: savedPath, sizeBytes: downloader.totalSize };
    };
  },
};
