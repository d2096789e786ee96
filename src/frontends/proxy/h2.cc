// HTTP/2 from clients (ALPN h2 on proxy_tls; docs/proxy.md). libnghttp2 frames the
// connection; each stream's request is handed, as HTTP/1.1 bytes over a net::h1::Pipe, to
// the exchange every HTTP/1.1 request gets: the same strict reader, decision, upstream
// and audit line. Its answer comes back the same way, is read as strictly as an upstream's,
// and is framed as HEADERS and DATA. Flow control is real in both directions: a stream's
// request body is acknowledged (WINDOW_UPDATE) only as the exchange reads it, and an
// exchange waits while its stream has more than kMaxBufferedAnswer bytes not yet sent.

// GCC 12 reports a false -Wmismatched-new-delete on Asio's coroutine frame allocator (the
// frame is allocated and freed by awaitable_frame_base's own operators), as in
// frontends/spoe/agent.cc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "common/strings.h"
#include "frontends/proxy/exchange.h"
#include "frontends/proxy/proxy.h"
#include "telemetry/metrics.h"

namespace portcullis::frontends::proxy {
namespace {

using net::h1::kNoThrow;
using net::h1::ResponseReader;
namespace beast = boost::beast;
namespace bhttp = beast::http;

constexpr std::uint32_t kMaxConcurrentStreams = 100;
constexpr std::int32_t kStreamWindow = 256 * 1024;      // a stream's receive window
constexpr std::size_t kMaxBufferedAnswer = 256 * 1024;  // answer bytes a stream holds unsent
constexpr std::size_t kRefillBelow = 64 * 1024;  // unread request bytes under which the window
                                                 // is given back
constexpr std::size_t kMaxFields = 100;          // as net::h1::RequestReader::kMaxFields
constexpr std::size_t kWriteChunk = 64 * 1024;   // frames gathered into one TLS write

// Wakes one coroutine that waits for it. Single-threaded: a waiter checks its condition
// and waits with no suspension in between, so no wake-up is lost.
class Signal final {
 public:
  explicit Signal(const asio::any_io_executor& loop)
      : timer_(loop, asio::steady_timer::time_point::max()) {}
  asio::awaitable<void> wait() { co_await timer_.async_wait(kNoThrow); }
  void notify() { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

// A field value as it may go into an HTTP/1.1 head: no CR, LF or NUL (which would end the
// line and start a field of the client's choosing), no other control character.
bool safeValue(std::string_view v) {
  return std::none_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}
// A request-line part: visible ASCII only (a space would split the line).
bool visible(std::string_view v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}
// A field name as HTTP/2 carries it: a token in lower case (RFC 9113 §8.2.1).
bool h2FieldName(std::string_view name) {
  return isToken(name) &&
         std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

struct Session;

// One stream: its request, handed to the exchange as HTTP/1.1, and the exchange's answer.
struct Stream final : net::h1::Pipe {
  Stream(Session& s, std::int32_t stream_id, const asio::any_io_executor& loop)
      : session(&s), id(stream_id), signal(loop) {}

  Session* session;  // null once the stream or the connection is gone
  std::int32_t id;

  // The request head as received, checked field by field.
  std::string method, path, authority, host, cookie;
  std::string fields;  // "name: value\r\n" lines
  std::size_t head_bytes = 0;
  std::size_t field_count = 0;
  bool has_length = false;
  bool chunked = false;  // no content-length: the body goes to the exchange chunked

  // Request bytes for the exchange.
  std::string in;
  std::size_t in_pos = 0;
  bool in_end = false;
  std::size_t unconsumed = 0;  // DATA bytes received, not yet given back to the windows

  // The answer, as the exchange writes it.
  bool head_request = false;
  std::optional<ResponseReader> answer;
  std::string staged;  // answer bytes not parsed yet
  bool submitted = false, answered = false;
  std::string out;  // body bytes for DATA frames
  std::size_t out_pos = 0;
  bool deferred = false;  // the data source said DEFERRED: resume it when there is more

  bool closed = false;   // reset by the client, or the connection ended
  bool aborted = false;  // cancel(): the exchange's deadline passed
  Signal signal;

  asio::awaitable<std::tuple<beast::error_code, std::size_t>> read(
      asio::mutable_buffer into) override;
  asio::awaitable<beast::error_code> write(asio::const_buffer bytes) override;
  void endOutput() override { finish(); }
  void cancel() override {
    aborted = true;
    signal.notify();
  }

  void receive(const std::uint8_t* data, std::size_t len);
  void endInput();
  // The exchange is over: a complete answer ends the stream, anything else resets it.
  void finish();
  bool parseAnswer();
  void submitHead();
  void moreOutput();
  void reset(std::uint32_t code);
  static ssize_t readData(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                          std::uint32_t* flags, nghttp2_data_source* source, void*);
};

// One connection's nghttp2 session and its streams.
struct Session {
  Session(ProxyFrontend& door, const asio::any_io_executor& executor, std::size_t header_limit,
          std::size_t answer_header_limit)
      : frontend(door),
        loop(executor),
        kick(executor),
        max_head(header_limit),
        max_answer_head(answer_header_limit) {}
  ~Session() {
    for (auto& [id, s] : streams) {
      s->session = nullptr;
      s->closed = true;
      s->signal.notify();
    }
    nghttp2_session_del(ng);
  }
  ProxyFrontend& frontend;
  asio::any_io_executor loop;
  nghttp2_session* ng = nullptr;
  std::map<std::int32_t, std::shared_ptr<Stream>> streams;
  Signal kick;                  // the writer: there may be frames to send
  std::size_t max_head;         // a request's header list (limits.max_header_bytes)
  std::size_t max_answer_head;  // an answer's head as the exchange writes it
  bool dead = false;
  bool writing = false;
  bool goaway = false;
  bool terminated = false;
  std::function<void(std::shared_ptr<Stream>)> start;  // runs a stream's exchange

  Stream* stream(std::int32_t id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(ng, id));
  }
};

asio::awaitable<std::tuple<beast::error_code, std::size_t>> Stream::read(
    asio::mutable_buffer into) {
  while (in_pos == in.size() && !in_end && !closed && !aborted)
    co_await signal.wait();
  if (aborted || closed) co_return std::tuple(asio::error::operation_aborted, 0);
  if (in_pos == in.size()) co_return std::tuple(asio::error::eof, 0);
  const std::size_t n = std::min(into.size(), in.size() - in_pos);
  std::memcpy(into.data(), in.data() + in_pos, n);
  in_pos += n;
  if (in_pos == in.size()) {
    in.clear();
    in_pos = 0;
  }
  // The client may send more once what it sent is nearly read: the window is given back.
  if (session != nullptr && unconsumed > 0 && in.size() - in_pos < kRefillBelow) {
    nghttp2_session_consume(session->ng, id, unconsumed);
    unconsumed = 0;
    session->kick.notify();
  }
  co_return std::tuple(beast::error_code(), n);
}

asio::awaitable<beast::error_code> Stream::write(asio::const_buffer bytes) {
  if (closed || aborted || session == nullptr) co_return asio::error::operation_aborted;
  staged.append(static_cast<const char*>(bytes.data()), bytes.size());
  if (!parseAnswer()) {
    reset(NGHTTP2_INTERNAL_ERROR);
    co_return asio::error::broken_pipe;
  }
  while (out.size() - out_pos > kMaxBufferedAnswer && !closed && !aborted)
    co_await signal.wait();
  if (closed || aborted) co_return asio::error::operation_aborted;
  co_return beast::error_code();
}

// Reads what the exchange wrote as an HTTP/1.1 answer: interim answers become 1xx HEADERS,
// the final head becomes HEADERS, its body DATA. False when it is not valid HTTP/1.1.
bool Stream::parseAnswer() {
  std::size_t pos = 0;
  while (!answered && pos < staged.size()) {
    if (!answer) {
      answer.emplace(session->max_answer_head);
      if (head_request) answer->skip(true);
      answer->eager(true);
    }
    beast::error_code ec;
    pos += answer->put(asio::buffer(staged.data() + pos, staged.size() - pos), ec);
    if (ec && ec != bhttp::error::need_more) return false;
    if (answer->is_header_done() && !submitted) {
      if (answer->status < 200) {  // 100 Continue after an allow
        const std::string status = std::to_string(answer->status);
        nghttp2_nv nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(":status")),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(status.c_str())), 7,
                      status.size(), NGHTTP2_NV_FLAG_NONE};
        nghttp2_submit_headers(session->ng, NGHTTP2_FLAG_NONE, id, nullptr, &nv, 1, nullptr);
        answer.reset();
        continue;
      }
      submitHead();
    }
    moreOutput();
    if (ec == bhttp::error::need_more) break;
  }
  staged.erase(0, pos);
  session->kick.notify();
  return true;
}

void Stream::submitHead() {
  submitted = true;
  const std::string status = std::to_string(answer->status);
  // HTTP/2 field names are lower case; fields about the connection stay behind (RFC 9113
  // §8.2.2), as they do in every answer the proxy relays.
  std::vector<std::pair<std::string, const std::string*>> kept;
  kept.reserve(answer->fields.size());
  for (const auto& [name, value] : answer->fields) {
    if (!fixedHopByHop(name)) kept.emplace_back(toLower(name), &value);
  }
  std::vector<nghttp2_nv> nva;
  nva.reserve(kept.size() + 1);
  const auto add = [&](std::string_view name, std::string_view value) {
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                   value.size(), NGHTTP2_NV_FLAG_NONE});
  };
  add(":status", status);
  for (const auto& [name, value] : kept)
    add(name, *value);
  const int code = answer->status;
  const bool bodiless = head_request || code == 204 || code == 304;
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = &Stream::readData;
  nghttp2_submit_response(session->ng, id, nva.data(), nva.size(), bodiless ? nullptr : &provider);
  if (bodiless) answered = true;
}

void Stream::moreOutput() {
  if (answer && answer->is_header_done() && submitted) {
    if (!answer->body.empty()) {
      out += answer->body;
      answer->body.clear();
    }
    if (answer->is_done()) answered = true;
  }
  if (deferred && session != nullptr && (out.size() > out_pos || answered)) {
    deferred = false;
    nghttp2_session_resume_data(session->ng, id);
  }
}

ssize_t Stream::readData(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                         std::uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<Stream*>(source->ptr);
  const std::size_t left = s->out.size() - s->out_pos;
  if (left == 0 && !s->answered) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  const std::size_t n = std::min(length, left);
  std::memcpy(buf, s->out.data() + s->out_pos, n);
  s->out_pos += n;
  if (s->out_pos == s->out.size()) {
    s->out.clear();
    s->out_pos = 0;
    if (s->answered) *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  s->signal.notify();  // an exchange waiting for room
  return static_cast<ssize_t>(n);
}

void Stream::receive(const std::uint8_t* data, std::size_t len) {
  if (chunked) {
    char size[24];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", len);
    in.append(size, static_cast<std::size_t>(n));
  }
  in.append(reinterpret_cast<const char*>(data), len);
  if (chunked) in += "\r\n";
  unconsumed += len;
  signal.notify();
}

void Stream::endInput() {
  if (in_end) return;
  in_end = true;
  if (chunked) in += "0\r\n\r\n";
  signal.notify();
}

void Stream::finish() {
  if (!answered && answer && answer->is_header_done() && answer->need_eof()) {
    beast::error_code ec;
    answer->put_eof(ec);
    if (!ec) moreOutput();
  }
  if (answered) {
    moreOutput();
  } else {
    reset(NGHTTP2_INTERNAL_ERROR);  // cut short: the client must not take it as whole
  }
  if (session != nullptr) session->kick.notify();
}

void Stream::reset(std::uint32_t code) {
  if (session == nullptr || closed) return;
  nghttp2_submit_rst_stream(session->ng, NGHTTP2_FLAG_NONE, id, code);
  session->kick.notify();
}

// ---- nghttp2's callbacks -------------------------------------------------------------------

int onBeginHeaders(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
  auto& s = *static_cast<Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto stream = std::make_shared<Stream>(s, frame->hd.stream_id, s.loop);
  nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, stream.get());
  s.streams.emplace(frame->hd.stream_id, std::move(stream));
  return 0;
}

int onHeader(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name_bytes,
             std::size_t name_len, const std::uint8_t* value_bytes, std::size_t value_len,
             std::uint8_t, void* user) {
  auto& s = *static_cast<Session*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;  // trailers are dropped, as from HTTP/1.1 clients (RFC 9110 §6.5.1)
  }
  Stream* st = s.stream(frame->hd.stream_id);
  if (st == nullptr) return 0;
  const std::string_view name(reinterpret_cast<const char*>(name_bytes), name_len);
  const std::string_view value(reinterpret_cast<const char*>(value_bytes), value_len);
  st->head_bytes += name_len + value_len + 32;  // RFC 9113 §6.5.2's accounting
  if (st->head_bytes > s.max_head || ++st->field_count > kMaxFields || !safeValue(value)) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the stream is reset
  }
  if (name.starts_with(':')) {
    if (name == ":method" && isToken(value)) {
      st->method = value;
    } else if (name == ":path" && visible(value)) {
      st->path = value;
    } else if (name == ":authority" && visible(value)) {
      st->authority = value;
    } else if (name != ":scheme") {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // :protocol (extended CONNECT), or bad
    }
    return 0;
  }
  if (!h2FieldName(name)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (name == "host") {
    st->host = value;
  } else if (name == "cookie") {  // crumbs joined into one field (RFC 9113 §8.2.3)
    if (!st->cookie.empty()) st->cookie += "; ";
    st->cookie += value;
  } else {
    if (name == "content-length") st->has_length = true;
    st->fields.append(name).append(": ").append(value).append("\r\n");
  }
  return 0;
}

// The request head is complete: written as HTTP/1.1 for the exchange, which starts now.
void startRequest(Session& s, Stream& st, bool end_stream) {
  if (!st.host.empty() && !st.authority.empty() && st.host != st.authority) {
    // Two hosts: a reader that takes the other one would route the request elsewhere
    // (RFC 9113 §8.3.1 lets a server treat this as malformed).
    nghttp2_submit_rst_stream(s.ng, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_PROTOCOL_ERROR);
    return;
  }
  const std::string& host = st.authority.empty() ? st.host : st.authority;
  st.head_request = st.method == "HEAD";
  st.chunked = !end_stream && !st.has_length;
  std::string& h = st.in;
  h.reserve(st.method.size() + st.path.size() + st.fields.size() + host.size() + 64);
  h.append(st.method).append(" ").append(st.path).append(" HTTP/1.1\r\n");
  if (!host.empty()) h.append("host: ").append(host).append("\r\n");
  h.append(st.fields);
  if (!st.cookie.empty()) h.append("cookie: ").append(st.cookie).append("\r\n");
  if (st.chunked) h.append("transfer-encoding: chunked\r\n");
  h.append("\r\n");
  st.fields.clear();
  st.fields.shrink_to_fit();
  if (end_stream) st.endInput();
  const auto it = s.streams.find(st.id);
  if (it != s.streams.end()) s.start(it->second);
}

int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto& s = *static_cast<Session*>(user);
  Stream* st = s.stream(frame->hd.stream_id);
  if (st == nullptr) return 0;
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    startRequest(s, *st, end_stream);
  } else if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) && end_stream) {
    st->endInput();
  }
  return 0;
}

int onDataChunk(nghttp2_session* ng, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                std::size_t len, void* user) {
  auto& s = *static_cast<Session*>(user);
  Stream* st = s.stream(stream_id);
  if (st == nullptr || st->closed) {
    nghttp2_session_consume(ng, stream_id, len);  // nobody reads it: the window goes back now
    return 0;
  }
  st->receive(data, len);
  return 0;
}

int onStreamClose(nghttp2_session* ng, std::int32_t stream_id, std::uint32_t, void* user) {
  auto& s = *static_cast<Session*>(user);
  const auto it = s.streams.find(stream_id);
  if (it == s.streams.end()) return 0;
  Stream& st = *it->second;
  if (st.unconsumed > 0) nghttp2_session_consume_connection(ng, st.unconsumed);
  st.unconsumed = 0;
  st.closed = true;
  st.session = nullptr;
  st.signal.notify();
  s.streams.erase(it);
  s.kick.notify();
  return 0;
}

nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* const shared = [] {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, onDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, onStreamClose);
    return cbs;
  }();
  return shared;
}

nghttp2_option* options() {
  static nghttp2_option* const shared = [] {
    nghttp2_option* o = nullptr;
    nghttp2_option_new(&o);
    nghttp2_option_set_no_auto_window_update(o, 1);  // given back as the exchange reads
    return o;
  }();
  return shared;
}

asio::awaitable<void> runStream(ProxyFrontend& door, std::shared_ptr<Stream> stream, IpAddress peer,
                                std::shared_ptr<const tls::PeerCertificate> cert,
                                std::size_t buffer_limit, std::chrono::milliseconds write_timeout) {
  net::h1::Connection exchange(co_await asio::this_coro::executor, *stream, buffer_limit);
  exchange.setWriteTimeout(write_timeout);
  co_await door.serveHttp1(exchange, peer, cert.get(), nullptr);
  stream->finish();
}

}  // namespace

asio::awaitable<void> ProxyFrontend::serveH2(Connection& client, IpAddress peer,
                                             const tls::PeerCertificate* cert, Client& node) {
  const auto executor = co_await asio::this_coro::executor;
  const net::HttpLimits& limits = listener_->limits;
  const auto write_timeout = limits.write_timeout.value_or(limits.header_timeout);
  // The exchange's answer carries the upstream's head (up to max_response_header_bytes)
  // and the proxy's own fields.
  Session s(*this, executor, limits.max_header_bytes,
            gatekeeper_.snapshot()->settings.proxy.max_response_header_bytes + 16 * 1024);
  if (nghttp2_session_server_new2(&s.ng, callbacks(), &s, options()) != 0) co_return;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(limits.max_header_bytes)},
  };
  nghttp2_submit_settings(s.ng, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection's window grows with the streams' (the default 64 KiB would stall them).
  nghttp2_session_set_local_window_size(s.ng, NGHTTP2_FLAG_NONE, 0,
                                        kStreamWindow * static_cast<std::int32_t>(4));
  auto shared_cert =
      cert != nullptr ? std::make_shared<const tls::PeerCertificate>(*cert) : nullptr;
  const std::size_t buffer_limit = net::h1::bufferLimit(limits);
  // Started after nghttp2 has read the rest of what came with the stream's head: never
  // inside its callbacks (co_spawn alone would run the exchange at once, decision and
  // all), and a stream the client reset in the same read (rapid reset) is never decided.
  s.start = [this, executor, peer, shared_cert, buffer_limit,
             write_timeout](std::shared_ptr<Stream> stream) {
    asio::post(executor, [this, executor, peer, shared_cert, buffer_limit, write_timeout,
                          stream = std::move(stream)]() mutable {
      if (stream->closed) return;
      stats_->h2_streams->inc();
      asio::co_spawn(
          executor,
          runStream(*this, std::move(stream), peer, shared_cert, buffer_limit, write_timeout),
          asio::detached);
    });
  };
  // One deadline for the connection: a write that waits gets write_timeout; otherwise a
  // connection without a stream gets idle_timeout, one with streams none of its own (each
  // exchange has its own).
  const auto rearm = [&] {
    client.expireAfter(s.writing           ? write_timeout
                       : s.streams.empty() ? limits.idle_timeout
                                           : net::kNoTimeout);
  };
  const auto finished = [&] {
    return s.dead ||
           (nghttp2_session_want_read(s.ng) == 0 && nghttp2_session_want_write(s.ng) == 0);
  };

  auto reader = [&]() -> asio::awaitable<void> {
    std::vector<std::uint8_t> buffer(32 * 1024);
    while (!finished()) {
      node.idle = s.streams.empty();
      rearm();
      auto [ec, n] = co_await client.readSome(asio::buffer(buffer));
      node.idle = false;
      if (ec || s.dead) break;
      if (nghttp2_session_mem_recv(s.ng, buffer.data(), n) < 0) break;
      s.kick.notify();
    }
    s.dead = true;
    s.kick.notify();
  };
  auto writer = [&]() -> asio::awaitable<void> {
    std::string out;
    for (;;) {
      // Draining: no new streams (GOAWAY), and the connection ends with its last stream.
      if (draining_ && !s.goaway) {
        s.goaway = true;
        nghttp2_submit_goaway(s.ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(s.ng), NGHTTP2_NO_ERROR,
                              nullptr, 0);
      }
      if (s.goaway && s.streams.empty() && !s.terminated) {
        s.terminated = true;
        nghttp2_session_terminate_session(s.ng, NGHTTP2_NO_ERROR);
      }
      out.clear();
      while (out.size() < kWriteChunk) {
        const std::uint8_t* data = nullptr;
        const auto n = nghttp2_session_mem_send(s.ng, &data);
        if (n <= 0) {
          if (n < 0) s.dead = true;
          break;
        }
        out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
      if (!out.empty()) {
        s.writing = true;
        rearm();
        const auto ec = co_await client.writeAll(asio::buffer(out));
        s.writing = false;
        rearm();
        if (ec) break;
        continue;
      }
      if (finished()) break;
      co_await s.kick.wait();
    }
    s.dead = true;
    client.cancel();  // the reader waits for the client: it ends too
  };
  using namespace asio::experimental::awaitable_operators;
  co_await (reader() && writer());
}

}  // namespace portcullis::frontends::proxy
