/**
 * Every RPC's method, status code and latency for the metrics: a grpc-js
 * server interceptor, placed first (innermost) in the server's list
 * (server.ts), so the statuses the token guard sends when it refuses a call
 * pass through it as well as the handlers'. A call the client cancels (a
 * followed log closed, a CLI interrupted) counts once, as CANCELLED.
 */
import { ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";
import type { MetricsRecorder } from "./recorder.js";
import { grpcCodeName, rpcMethod } from "./samples.js";

export function rpcMetricsInterceptor(
  recorder: Pick<MetricsRecorder, "rpcEnded">,
  now: () => number = () => performance.now(),
): ServerInterceptor {
  return (method, call) => {
    const started = now();
    const name = rpcMethod(method.path);
    let ended = false;
    const end = (code: number) => {
      if (ended) return;
      ended = true;
      recorder.rpcEnded(name, grpcCodeName(code), (now() - started) / 1000);
    };
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => end(status.CANCELLED) }),
      sendStatus: (sent, next) => {
        end(sent.code);
        next(sent);
      },
    });
  };
}
