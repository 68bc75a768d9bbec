export type {
  ContainerSpec,
  ContainerStatus,
  ExecResult,
  LogOptions,
  LogStream,
  Runtime,
} from "./types.js";
export {
  containerName,
  isAddressInUse,
  isInvalidSince,
  isNameInUse,
  isNoSuchContainer,
  isNoSuchImage,
  isPullFailure,
  LABEL_COMPONENT,
  LABEL_NODE,
  LABEL_SERVICE,
  mcpLabels,
  parseInspectObject,
  parsePsJson,
  splitContainerName,
} from "./args.js";
export { PodmanApiRuntime, type PodmanApiOptions, type StorageInfo } from "./libpod/runtime.js";
export { PodmanService, checkStorage, type PodmanServiceOptions } from "./libpod/service.js";
export { LibpodClient } from "./libpod/client.js";
export { LibpodError } from "./libpod/errors.js";
