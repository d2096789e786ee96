# Splits the samples of `perf script -F ip,sym` (recorded with -g) by where the time went:
# user space, or the kernel inside which system call (named by the libc wrapper that made
# it: the frame after entry_SYSCALL_64_after_hwframe), with the part spent switching to
# another task (__schedule on the stack: on one shared CPU, a send that wakes the peer
# often hands the CPU over before it returns). Kernel stacks are reliable without frame
# pointers; user stacks are not needed for this split.
#   perf script -i perf.data -F ip,sym | awk -f syscalls.awk
function flush() {
  if (n) {
    c = !kern ? "user space" : (sys != "" ? "kernel, in " sys : "kernel, outside a system call")
    if (kern && sw) c = c ", switching to another task"
    t[c]++
    all++
  }
  n = 0; sys = ""; kern = 0; sw = 0; after = 0
}
/^[[:space:]]*$/ { flush(); next }
{
  n++
  if (n == 1 && $1 ~ /^ffffffff/) kern = 1
  if (after && sys == "") sys = $2
  if ($2 == "entry_SYSCALL_64_after_hwframe") after = 1
  if ($2 == "__schedule") sw = 1
}
END {
  flush()
  for (c in t) printf "%6.1f%%  %s\n", 100 * t[c] / all, c | "sort -rn"
  close("sort -rn")
}
