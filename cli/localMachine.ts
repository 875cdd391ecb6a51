/**
 * What the CLI does on this machine rather than through a running daemon: run the daemon
 * itself, read this machine's configuration, identity and cluster membership, list and
 * download model files, write synthetic models, list the network interfaces.
 *
 * The CLI declares here what it needs, in its own terms (plain data, cli/ and protocol/
 * types only); daemon/commands/ implements it. cli/main.ts is the one file that sees both: it
 * hands the implementation to the program (cli/program.ts), so the rest of cli/ never reaches
 * into daemon/ (eslint.layers.js), and a test can hand in another machine.
 */

/** Which configuration to read: `--config` (else the default file) and the environment. */
export interface ConfigChoice {
  configFile?: string | undefined;
  /** Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Problems of the configuration that do not stop the command, each as it is found. */
  onWarning?: (warning: string) => void;
}

/** Where this machine's daemon listens, for a client on this machine, and the API key it wants. */
export interface ClientSettings {
  /** E.g. http://127.0.0.1:4327; a wildcard bind (0.0.0.0, ::) is reached via loopback. */
  url: string;
  apiKey: string | undefined;
}

/** `hearth serve`'s flags as commander hands them over: strings until the configuration checks them. */
export interface ServeFlags {
  host?: string;
  port?: string;
  modelsDir?: string;
  dataDir?: string;
  apiKeyFile?: string;
  logLevel?: string;
  parallel?: string;
  keepAlive?: string;
  /** `--peer host:port`, repeatable: added to the file's `peer.static_peers`. */
  peer?: string[];
  peerPort?: string;
  peerBind?: string;
  /** Only an explicit `--no-mdns` (false) overrides the file. */
  mdns?: boolean;
}

/** A model file in this machine's models dir or extra paths, as `hearth models` lists it. */
export interface LocalModel {
  /** File name without `.gguf`; what clients put in `model`. */
  id: string;
  /** Other names that resolve to it (from the config). */
  aliases: string[];
  path: string;
  sizeBytes: number;
  /** File mtime, seconds since the epoch. */
  createdAt: number;
  /** From the GGUF metadata; absent when the header could not be read. */
  architecture?: string;
  parameterCount?: number;
  quantization?: string;
  contextLength?: number;
  layerCount?: number;
  embeddingLength?: number;
}

/** One download into the models dir (`hearth pull hf:...`). */
export interface ModelDownload {
  /** The URI as the user typed it: `hf:user/repo/file.gguf[#branch]` or an http(s) URL. */
  uri: string;
  directory: string;
  /** Taken from the URI, never from the server. */
  fileName: string;
  /** Aborting stops the transfer; the download then rejects. */
  signal: AbortSignal;
  onProgress: (doneBytes: number, totalBytes: number) => void;
}

export interface DownloadedModel {
  path: string;
  sizeBytes: number;
}

/** Downloads with resume and split-file support; a file already there is kept. */
export type ModelDownloader = (download: ModelDownload) => Promise<DownloadedModel>;

export interface LocalModels {
  /** The models this machine has, read from the models dir and extra paths (no daemon needed). */
  list(choice: ConfigChoice & { modelsDir?: string | undefined }): Promise<{ modelsDir: string; models: LocalModel[] }>;
  /** Where a download goes: `--models-dir`, else the configured models dir. */
  directory(choice: ConfigChoice & { modelsDir?: string | undefined }): Promise<string>;
  /**
   * Loads the downloader. Loading it installs exit hooks on SIGINT (signal-exit, through
   * node-llama-cpp's dependencies) that re-raise the signal when they find no other listener
   * left, so a command with its own Ctrl-C handling loads the downloader before adding it.
   */
  downloader(): Promise<ModelDownloader>;
}

/** Which data dir holds the membership: `--data-dir`, else the configured one. */
export interface MembershipChoice extends ConfigChoice {
  dataDir?: string | undefined;
}

export interface ClusterCreated {
  clusterId: string;
  /** The cluster secret, for the other machines' `hearth cluster join`. */
  joinToken: string;
  nodeId: string;
  /** The cluster this node left, when `force` replaced a membership. */
  replacedClusterId: string | undefined;
}

export interface ClusterJoined {
  clusterId: string;
  nodeId: string;
  /** False when the node already belonged to that cluster. */
  changed: boolean;
  replacedClusterId: string | undefined;
}

/** `hearth cluster show`: never the secret. */
export interface MembershipView {
  /** Null until the first `hearth serve` or `hearth cluster init|join` creates the identity. */
  nodeId: string | null;
  fingerprint: string | null;
  clusterId: string | null;
  origin: "init" | "join" | null;
  since: string | null;
  peerPort: number;
  peerBind: string;
  mdns: boolean;
  staticPeers: string[];
  dataDir: string;
}

/** This machine's cluster membership, in its data dir. A running daemon sees a change when restarted. */
export interface LocalCluster {
  /** Creates a cluster with this node as its first member; HEARTH_CLUSTER_CONFLICT when it belongs to one, unless `force`. */
  init(choice: MembershipChoice & { force: boolean }): Promise<ClusterCreated>;
  /** Stores a join token's cluster; HEARTH_JOIN_TOKEN_INVALID, or HEARTH_CLUSTER_CONFLICT for another cluster unless `force`. */
  join(token: string, choice: MembershipChoice & { force: boolean }): Promise<ClusterJoined>;
  show(choice: MembershipChoice): Promise<MembershipView>;
}

/** A network interface address, classified for `hearth doctor`. */
export interface InterfaceAddress {
  interface: string;
  address: string;
  family: "IPv4" | "IPv6";
  /** `address/prefix`, or null when the OS did not say. */
  cidr: string | null;
  kind: "loopback" | "container" | "vm-bridge" | "vpn" | "lan";
  /** Reachable on the local link only. */
  linkLocal: boolean;
  /** A LAN interface with an address usable off this machine: where peers are expected. */
  likelyPeerNetwork: boolean;
}

/** What `hearth doctor` knows of this machine without asking its daemon. */
export interface MachineFacts {
  /** The HTTP API's configured address. */
  host: string;
  port: number;
  dataDir: string;
  peer: { host: string; port: number; mdns: boolean; staticPeers: string[] };
  /** From the identity and membership files; null when absent or unreadable. */
  nodeId: string | null;
  clusterId: string | null;
  interfaces: InterfaceAddress[];
}

/** The shape and weights of a synthetic model (`hearth synth`). */
export interface SynthSpec {
  layers: number;
  embd: number;
  ff: number;
  heads: number;
  kvHeads: number;
  contextLength: number;
  quant: string;
  seed: number;
  /** Greedy output is printable text only. */
  textOnlyOutput?: boolean;
}

export interface SynthWritten {
  parameterCount: number;
  tensorCount: number;
  fileBytes: number;
}

export interface SyntheticModels {
  /** Shape presets by name; a preset gives every field but the seed. */
  readonly presets: Readonly<Record<string, Omit<SynthSpec, "seed" | "textOnlyOutput">>>;
  readonly quants: readonly string[];
  /** Throws HEARTH_CLI_USAGE for a spec that cannot be written, naming each field through `label`. */
  validate(spec: SynthSpec, label: (field: keyof SynthSpec) => string): void;
  /** Writes the file atomically: a running daemon never lists half of it. */
  write(filePath: string, spec: SynthSpec, onProgress?: (writtenBytes: number, totalBytes: number) => void): Promise<SynthWritten>;
  /**
   * Writes a scripted model whose greedy answer to any conversation is `script`;
   * HEARTH_CLI_USAGE for a script it cannot encode or a family it does not know.
   */
  writeScripted(filePath: string, script: string, options?: ScriptedSpec): Promise<ScriptedWritten>;
}

export interface ScriptedSpec {
  /** Blocks in all (default 1; the extra ones pass through). */
  layers?: number;
  /** The chat template family (qwen3 by default, or llama3): the template and its special tokens. */
  family?: string;
}

export interface ScriptedWritten {
  /** The chat template family written. */
  family: string;
  vocabSize: number;
  rules: number;
  /** The tokens the model answers with, end of turn included. */
  generatedTokens: number;
  fileBytes: number;
}

export interface LocalMachine {
  /** Hearth's version (`hearth --version`). */
  version(): string;
  /** Where the daemon the client commands talk to listens, from this machine's configuration. */
  clientSettings(choice: ConfigChoice): Promise<ClientSettings>;
  /**
   * Runs the daemon (`hearth serve`) in this process. Resolves once it runs; it then runs until
   * a signal ends the process. Rejects when it cannot start: with a configuration error before
   * anything was started, or with the start failure once everything started has been stopped
   * and the log flushed.
   */
  serve(options: ServeFlags & { configFile?: string | undefined }): Promise<void>;
  readonly models: LocalModels;
  readonly cluster: LocalCluster;
  /** This machine's configuration, identity, membership and network interfaces. */
  facts(choice: ConfigChoice): Promise<MachineFacts>;
  readonly synth: SyntheticModels;
}
