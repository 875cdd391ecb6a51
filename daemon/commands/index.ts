/**
 * The commands that act on this machine, as the CLI asks for them (LocalMachine of
 * cli/localMachine.ts): running the daemon, reading the configuration, the identity and
 * cluster membership, the model files and network interfaces, and writing synthetic models.
 *
 * daemon/ never imports cli/, so this object is not typed with the CLI's interface here;
 * cli/main.ts, which hands it to the program, is where the compiler checks that it fits.
 */

import { hearthVersion } from "../lifecycle/version.js";
import { clientSettings } from "./clientSettings.js";
import { cluster } from "./cluster.js";
import { machineFacts } from "./facts.js";
import { models } from "./models.js";
import { serve } from "./serve.js";
import { synth } from "./synth.js";

export const localMachine = {
  version: hearthVersion,
  clientSettings,
  serve,
  models,
  cluster,
  facts: machineFacts,
  synth,
};
