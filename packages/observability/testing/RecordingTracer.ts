import { Tracer } from "effect"

/** A tracer that keeps every span it makes, in `spans`: for tests that check spans and their parents. */
export const recordingTracer = () => {
  const spans: Array<Tracer.Span> = []
  const recording = Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options)
      spans.push(span)
      return span
    }
  })
  return { recording, spans }
}
