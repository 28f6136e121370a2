// Tripwire harness patch (scripts/services.d/patches/minio), overlaid on the MinIO module before
// building. MinIO master (2026-02-12, the only version the module proxy serves here) wraps every
// S3 handler's ResponseWriter in trackingResponseWriter, which has no Flush method: streamed
// responses such as ListenBucketNotification then sit in net/http's buffer and never reach the
// client. Forward Flush to the wrapped writer, as the other MinIO writers do.

package cmd

import "net/http"

// Flush implements http.Flusher.
func (w *trackingResponseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
