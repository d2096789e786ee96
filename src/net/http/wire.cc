#include "net/http/wire.h"

namespace portcullis::net::h1 {

// True when a header block holds an obs-fold: a line that starts with a space or a tab
// continues the one before (RFC 9112 §5.2). Beast joins the two; we refuse the request,
// so a field's value is never what one reader joined and another split.
bool hasObsFold(std::string_view head) {
  for (std::size_t at = head.find('\n'); at != std::string_view::npos && at + 1 < head.size();
       at = head.find('\n', at + 1)) {
    if (head[at + 1] == ' ' || head[at + 1] == '\t') return true;
  }
  return false;
}

// The read buffer's bound: a whole header block and the listener's headroom, saturating (a
// listener without a bound, the Runtime API's, sets the headroom to max()).
std::size_t bufferLimit(const HttpLimits& limits) {
  const std::size_t headroom = limits.buffer_headroom_bytes;
  return limits.max_header_bytes > std::numeric_limits<std::size_t>::max() - headroom
             ? std::numeric_limits<std::size_t>::max()
             : limits.max_header_bytes + headroom;
}

// A request that failed so: the client is slow or gone, or the connection was closed here
// (closeSessions), or a "100 Continue" could not be written. Nothing to answer.
bool endsQuietly(const beast::error_code& ec) {
  return ec == beast::error::timeout || ec == bhttp::error::end_of_stream ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor ||
         ec == asio::error::broken_pipe;
}

}  // namespace portcullis::net::h1
