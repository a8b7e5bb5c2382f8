import { Code, ConnectError } from "@connectrpc/connect"
import { ErrorDetailSchema } from "./gen/im/message/v1/message_pb.ts"

/** A domain error as a gRPC error: the status code, plus the error's tag, code and message as a detail. */
export const toConnectError = (status: Code, detail: { readonly tag: string; readonly code?: string; readonly message: string }) =>
  new ConnectError(detail.message, status, undefined, [
    { desc: ErrorDetailSchema, value: { tag: detail.tag, code: detail.code ?? "", message: detail.message } }
  ])

/** The domain detail of a gRPC error, when the server sent one. */
export const errorDetailOf = (error: ConnectError) => error.findDetails(ErrorDetailSchema)[0]

export { Code, ConnectError }
