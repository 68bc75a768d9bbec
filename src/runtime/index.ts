export type {
  ContainerSpec,
  ContainerStatus,
  ExecResult,
  LogOptions,
  LogStream,
  Runtime,
} from "./types.js";
export {
  buildExecArgs,
  buildLogsArgs,
  buildRunArgs,
  containerName,
  isAddressInUse,
  isNameInUse,
  isNoSuchContainer,
  isNoSuchImage,
  isPullFailure,
  LABEL_COMPONENT,
  LABEL_NODE,
  LABEL_SERVICE,
  mcpLabels,
  parseInspectJson,
  parsePsJson,
  splitContainerName,
} from "./args.js";
export { PodmanRuntime, type PodmanOptions } from "./podman.js";
export { CommandError } from "../util/exec.js";
