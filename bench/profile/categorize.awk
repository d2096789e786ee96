# Groups `perf report --no-children --sort dso,symbol -g none` self-time lines into what the
# HTTP front door (bench/profile/front-door.sh) and the built-in proxy (bench/profile/proxy.sh)
# spend their CPU on (docs/benchmarks.md).
#   perf report -i perf.data --no-children --sort dso,symbol --stdio -g none | awk -f categorize.awk
/^#/ || NF < 3 { next }
{
  pct = $1; sub(/%/, "", pct); dso = $2
  sym = ""; for (i = 4; i <= NF; i++) sym = sym " " $i
  if (dso ~ /kernel/) cat = "kernel (syscalls, TCP over loopback, scheduler)"
  else if (sym ~ /malloc|free|_int_|unlink_chunk|tcache|cfree/) cat = "malloc/free"
  else if (dso ~ /libcrypto/) cat = "OpenSSL (SHA-256 of the cache key)"
  else if (sym ~ /memmove|memcpy|memcmp|memset|memchr|strlen|__mem|__str/) cat = "memcpy/memcmp/strlen"
  else if (dso ~ /libc\.so|vdso/) cat = "libc syscall wrappers, locks, clock"
  else if (sym ~ /serializer|write_some_op|write_op|write_msg_op|buffers_cat|buffers_suffix|buffers_prefix/) cat = "Beast: response serializer and buffers"
  else if (sym ~ /basic_parser|parse_field|parse_fields|parse_start|basic_fields|http::detail::read/) cat = "Beast: request parser and fields"
  else if (sym ~ /beast/) cat = "Beast: tcp_stream (timeouts), other"
  else if (sym ~ /asio/) cat = "Asio: coroutines, executors, reactor, timers"
  else if (sym ~ /portcullis::engine|portcullis::identity|portcullis::telemetry|portcullis::audit/) cat = "engine: decide, cache, metrics"
  else if (sym ~ /portcullis::frontends::proxy/) cat = "proxy front door: forward, upstream exchange, answer"
  else if (sym ~ /portcullis::frontends|portcullis::http/) cat = "authz front door: request from headers"
  else if (sym ~ /portcullis::net/) cat = "net/http server session"
  else if (dso ~ /libstdc|libfmt/) cat = "libstdc++/fmt"
  else cat = "other"
  total[cat] += pct; all += pct
}
END {
  for (c in total) printf "%6.1f%%  %s\n", total[c], c | "sort -rn"
  close("sort -rn")
  printf "%6.1f%%  (sampled)\n", all
}
