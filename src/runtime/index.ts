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
  LABEL_COMPONENT,
  LABEL_NODE,
  LABEL_SERVICE,
  mcpLabels,
  splitContainerName,
} from "./names.js";
export {
  ifContainerExists,
  isAddressInUse,
  isInvalidSince,
  isNameInUse,
  isNoSuchContainer,
  isNoSuchImage,
  isPullFailure,
} from "./errors.js";
export { parseInspectObject, parsePsJson } from "./libpod/status.js";
export { PodmanApiRuntime, type PodmanApiOptions, type StorageInfo } from "./libpod/runtime.js";
export { PodmanService, checkStorage, type PodmanServiceOptions } from "./libpod/service.js";
export { LibpodClient } from "./libpod/client.js";
export { LibpodError } from "./libpod/errors.js";
