#pragma once

// The HTTP/1 wire as the server and the built-in proxy read it: Beast's request parser made
// stricter, a connection's read buffer and output, and the read loop. Beast is included
// here, so only the translation units that speak HTTP/1 on a socket include this header
// (docs/conventions.md §14).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/deadlines.h"
#include "net/http/server.h"

namespace portcullis::net::h1 {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// The framing fields of one message, checked as they arrive, for both readers below: one
// Content-Length field holding one number (Beast accepts repeats and lists of equal
// values), Transfer-Encoding only as one field saying exactly `chunked` (Beast accepts
// other codings before or after it, repeats, and codings it cannot decode). Where readers
// in front of or behind us could disagree on where a message ends (RFC 9112 §6;
// docs/THREATS), the message is refused.
class FramingFields final {
 public:
  // Checks field `name` with `value`; sets `ec` when it breaks the rules above.
  void check(bhttp::field name, beast::string_view value, beast::error_code& ec) {
    if (name == bhttp::field::content_length) {
      if (length_ || value.find(',') != beast::string_view::npos) {
        ec = bhttp::error::bad_content_length;
        return;
      }
      length_ = true;
    } else if (name == bhttp::field::transfer_encoding) {
      if (chunked_ || !beast::iequals(value, "chunked")) {
        ec = bhttp::error::bad_transfer_encoding;
        return;
      }
      chunked_ = true;
    }
  }
  bool length() const { return length_; }
  bool chunked() const { return chunked_; }

 private:
  bool length_ = false;
  bool chunked_ = false;
};

// Beast's HTTP/1 request parser (its strictness: request line, field syntax, framing,
// limits), writing the request straight into an HttpIn: no fields container of Beast's in
// between, so each header is copied once, into the handler's own list. Stricter than
// Beast: framing as FramingFields checks it, and no Transfer-Encoding on HTTP/1.0;
// exactly one Host on HTTP/1.1, at most one on 1.0 (Beast checks neither). Obs-fold is
// refused in feed().
class RequestReader final : public bhttp::basic_parser<true> {
 public:
  // Room for this many fields from the start: the list grows once, not four times.
  static constexpr std::size_t kUsualFields = 16;
  // More fields than this is 431, whatever their size.
  static constexpr std::size_t kMaxFields = 100;

  RequestReader(std::size_t max_header_bytes, std::uint64_t max_body_bytes) {
    header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    body_limit(max_body_bytes);
  }
  // A body streamed through (the built-in proxy): `in.body` receives each piece as it is
  // parsed, for the reader's owner to pass on and clear; no bound on the whole body.
  struct Streamed {};
  RequestReader(std::size_t max_header_bytes, Streamed) : streamed_(true) {
    header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    body_limit(boost::none);
  }

  HttpIn in;
  unsigned version = 11;
  bool expect_continue = false;  // the first Expect field is "100-continue"

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int http_version, beast::error_code&) override {
    in.headers.reserve(kUsualFields);
    in.method.assign(method.data(), method.size());
    in.target.assign(target.data(), target.size());
    version = static_cast<unsigned>(http_version);
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(bhttp::field name, beast::string_view name_string, beast::string_view value,
                     beast::error_code& ec) override {
    // A chunked body's trailer fields come here too, after the header. They are dropped:
    // merged into the header list, a trailer could add an Authorization or an X-Original-URI
    // the request's head never had (RFC 9110 §6.5.1 forbids the merge).
    if (is_header_done()) return;
    // HAProxy's default bound: thousands of tiny fields fit in a few KiB and cost a lookup
    // each in every reader after us.
    if (++fields_ > kMaxFields) {
      ec = bhttp::error::header_limit;
      return;
    }
    framing_.check(name, value, ec);
    if (ec) return;
    if (name == bhttp::field::host) ++hosts_;
    if (name == bhttp::field::expect && !seen_expect_) {
      seen_expect_ = true;
      expect_continue = beast::iequals(value, "100-continue");
    }
    in.headers.add({name_string.data(), name_string.size()}, {value.data(), value.size()});
  }
  void on_header_impl(beast::error_code& ec) override {
    // RFC 9112 §6.1: Transfer-Encoding on HTTP/1.0 means the framing is faulty.
    if (framing_.chunked() && version < 11) ec = bhttp::error::bad_transfer_encoding;
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any with two, is a 400.
    if (hosts_ > 1 || (hosts_ == 0 && version >= 11)) ec = bhttp::error::bad_field;
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    if (length && !streamed_)
      in.body.reserve(static_cast<std::size_t>(*length));  // within body_limit
  }
  std::size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    in.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body,
                                 beast::error_code&) override {
    in.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  bool streamed_ = false;
  std::size_t fields_ = 0;
  bool seen_expect_ = false;
  FramingFields framing_;
  int hosts_ = 0;
};

// Beast's HTTP/1 response parser, as strict with an upstream's answer as RequestReader is
// with a client's request: one Content-Length field holding one number, Transfer-Encoding
// only as one field saying exactly `chunked`, never both, none on HTTP/1.0. An answer that
// breaks one is ambiguous (its readers could split it differently) and is never relayed.
// Fields are kept as received (names in their case), trailers are dropped, and the body is
// streamed: `body` receives each piece as it is parsed, for the owner to pass on and clear.
class ResponseReader final : public bhttp::basic_parser<false> {
 public:
  explicit ResponseReader(std::size_t max_header_bytes) {
    header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    body_limit(boost::none);
  }

  int status = 0;
  unsigned version = 11;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;

 private:
  void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int,
                       beast::error_code&) override {}
  void on_response_impl(int code, beast::string_view, int http_version,
                        beast::error_code&) override {
    fields.reserve(RequestReader::kUsualFields);
    status = code;
    version = static_cast<unsigned>(http_version);
  }
  void on_field_impl(bhttp::field name, beast::string_view name_string, beast::string_view value,
                     beast::error_code& ec) override {
    if (is_header_done()) return;  // a trailer
    framing_.check(name, value, ec);
    if (ec) return;
    fields.emplace_back(std::string(name_string.data(), name_string.size()),
                        std::string(value.data(), value.size()));
  }
  void on_header_impl(beast::error_code& ec) override {
    if (framing_.chunked() && (framing_.length() || version < 11)) {
      ec = bhttp::error::bad_transfer_encoding;
    }
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
  std::size_t on_body_impl(beast::string_view piece, beast::error_code&) override {
    body.append(piece.data(), piece.size());
    return piece.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view piece,
                                 beast::error_code&) override {
    body.append(piece.data(), piece.size());
    return piece.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  FramingFields framing_;
};

// True when a header block holds an obs-fold: a line that starts with a space or a tab
// continues the one before (RFC 9112 §5.2). Beast joins the two; we refuse the request,
// so a field's value is never what one reader joined and another split.
bool hasObsFold(std::string_view head);

// An in-process peer in place of a socket: an HTTP/2 stream (frontends/proxy/h2.cc) that
// hands a Connection the HTTP/1.1 bytes of its request and takes those of the answer.
class Pipe {
 public:
  virtual ~Pipe() = default;
  // Copies what the peer sent into `into`, waiting for some: eof once the peer is done,
  // operation_aborted after cancel() or once the peer is gone.
  virtual asio::awaitable<std::tuple<beast::error_code, std::size_t>> read(
      asio::mutable_buffer into) = 0;
  // Takes all of `bytes`, waiting while the peer is behind; an error once it is gone.
  virtual asio::awaitable<beast::error_code> write(asio::const_buffer bytes) = 0;
  // Nothing more will be written.
  virtual void endOutput() = 0;
  // Wakes a read or a write that waits (operation_aborted), now and from now on.
  virtual void cancel() = 0;
};

// A connection's socket, its read buffer (reused for every request: whole header blocks,
// body bytes and pipelined requests read along), the answers owed to the client and not
// yet sent (answers to pipelined requests leave in one send), and its deadline. Reads wait
// on the event loop; writes go out at once (the socket is non-blocking) and wait only when
// the client does not read. After startTls() every byte goes through OpenSSL: writes are
// then Asio's (the TLS engine buffers), under the write timeout.
class Connection final {
 public:
  using TlsStream = asio::ssl::stream<tcp::socket&>;

  Connection(tcp::socket socket, std::size_t buffer_limit)
      : socket_(std::move(socket)),
        buffer_(buffer_limit),
        deadline_(socket_.get_executor(), this, &Connection::cancelThunk) {
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
  }
  // A connection whose peer is `pipe` (which outlives it), on the event loop `loop`.
  Connection(const asio::any_io_executor& loop, Pipe& pipe, std::size_t buffer_limit)
      : socket_(loop),
        pipe_(&pipe),
        buffer_(buffer_limit),
        deadline_(loop, this, &Connection::cancelThunk) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  tcp::socket& socket() { return socket_; }
  beast::flat_buffer& buffer() { return buffer_; }

  // Ends every operation that waits (reads, writes, a handshake) with operation_aborted.
  void cancel() {
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    if (pipe_ != nullptr) pipe_->cancel();
  }

  // Starts TLS on the connection with `ssl` (owned from now on) as the server or the
  // client side, the handshake bounded by `timeout`. Bytes already buffered are refused:
  // nothing may be read before the handshake.
  asio::awaitable<beast::error_code> startTls(SSL* ssl, asio::ssl::stream_base::handshake_type side,
                                              std::chrono::milliseconds timeout) {
    tls_ = std::make_unique<TlsStream>(socket_, ssl);
    expireAfter(timeout);
    auto [ec] = co_await tls_->async_handshake(side, kNoThrow);
    expireAfter(kNoTimeout);
    co_return timedOut(ec);
  }
  // The TLS session, or null on a plain connection.
  SSL* tls() { return tls_ ? tls_->native_handle() : nullptr; }

  // One read straight into `into` (for a tunnel: no parsing, no deadline of its own).
  asio::awaitable<std::tuple<beast::error_code, std::size_t>> readSome(asio::mutable_buffer into) {
    if (tls_) co_return endOfTls(co_await tls_->async_read_some(into, kNoThrow));
    if (pipe_ != nullptr) co_return co_await pipe_->read(into);
    co_return co_await socket_.async_read_some(into, kNoThrow);
  }
  // Writes all of `bytes` (for a tunnel).
  asio::awaitable<beast::error_code> writeAll(asio::const_buffer bytes) {
    if (pipe_ != nullptr) co_return co_await pipe_->write(bytes);
    auto [ec, n] = tls_ ? co_await asio::async_write(*tls_, bytes, kNoThrow)
                        : co_await asio::async_write(socket_, bytes, kNoThrow);
    co_return ec;
  }

  void expireAfter(std::chrono::milliseconds timeout) { deadline_.expireAfter(timeout); }

  // Reads what the client sent next into the buffer, under the current deadline, after
  // sending what is owed to it (it may be waiting for that before it sends more).
  asio::awaitable<beast::error_code> fill() {
    if (!owed_.empty() && !co_await flush()) co_return asio::error::broken_pipe;
    const std::size_t room = readRoom();
    if (room == 0) co_return bhttp::error::buffer_overflow;
    if (tls_ == nullptr && pipe_ == nullptr) {  // the usual case: no coroutine frame more
      auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(room), kNoThrow);
      co_return afterRead(ec, n);
    }
    auto [ec, n] = co_await readSome(buffer_.prepare(room));
    co_return afterRead(ec, n);
  }

  // fill() without a coroutine frame of its own, for a caller that is a coroutine: when
  // readsDirectly(), co_await socket().async_read_some(buffer().prepare(readRoom())) (a
  // room of 0 is buffer_overflow), then afterRead() commits and says what happened.
  bool readsDirectly() const { return tls_ == nullptr && pipe_ == nullptr && owed_.empty(); }
  std::size_t readRoom() const { return beast::read_size(buffer_, 64 * 1024); }
  beast::error_code afterRead(beast::error_code ec, std::size_t n) {
    buffer_.commit(n);
    return timedOut(ec);
  }

  // Owes `text` to the client; flush() sends it.
  std::string& owed() { return owed_; }

  // flush() without a coroutine frame when the socket takes every owed byte at once: true
  // then (nothing is owed any more); false when flush() must finish (TLS, a pipe, a client
  // that does not read, an error), what was sent already gone from owed().
  bool sendNow() {
    if (owed_.empty()) return true;
    if (tls_ || pipe_ != nullptr) return false;
    boost::system::error_code ignored;
    return writeOwed(ignored);
  }

  // Sends what is owed; true when all of it was written (waiting under `write_timeout`
  // only while the client does not read).
  asio::awaitable<bool> flush() {
    const auto read_deadline = deadline_.at();  // a write that waits has its own
    if (tls_ || pipe_ != nullptr) {
      expireAfter(write_timeout_);
      beast::error_code ec;
      if (pipe_ != nullptr) {
        ec = co_await pipe_->write(asio::buffer(owed_));
      } else {
        std::tie(ec, std::ignore) =
            co_await asio::async_write(*tls_, asio::buffer(owed_), kNoThrow);
      }
      owed_.clear();
      if (ec) co_return false;
      deadline_.restore(read_deadline);
      co_return true;
    }
    boost::system::error_code ec;
    while (!writeOwed(ec)) {
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        expireAfter(write_timeout_);
        std::tie(ec) = co_await socket_.async_wait(tcp::socket::wait_write, kNoThrow);
        if (!ec) continue;
      }
      owed_.clear();
      co_return false;
    }
    deadline_.restore(read_deadline);
    co_return true;
  }
  void setWriteTimeout(std::chrono::milliseconds timeout) { write_timeout_ = timeout; }

  // Sends what is owed, then ends the sending side; true when all of it was written.
  asio::awaitable<bool> flushAndShutdown() {
    const bool written = co_await flush();
    if (pipe_ != nullptr) {
      pipe_->endOutput();
      co_return written;
    }
    if (tls_ && written) {
      // close_notify, so the client can tell the end from a cut (RFC 8446 §6.1); Asio then
      // waits for the client's own, which a bounded wait does not need.
      expireAfter(kTlsCloseWait);
      co_await tls_->async_shutdown(kNoThrow);
    }
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    co_return written;
  }

 private:
  // Writes what is owed on the plain socket, without waiting: true when all of it went (and
  // nothing is owed); false with `ec` (would_block when the client does not read), what was
  // written gone from owed().
  bool writeOwed(boost::system::error_code& ec) {
    std::size_t sent = 0;
    while (sent < owed_.size()) {
      sent += socket_.write_some(asio::buffer(owed_.data() + sent, owed_.size() - sent), ec);
      if (ec) {
        owed_.erase(0, sent);
        return false;
      }
    }
    owed_.clear();
    return true;
  }
  beast::error_code timedOut(beast::error_code ec) const {
    if (ec == asio::error::operation_aborted && deadline_.expired()) return beast::error::timeout;
    return ec;
  }

  // A peer that closes without close_notify (most HTTP clients) ends the stream as EOF
  // does: HTTP/1's own framing says whether anything was cut.
  static std::tuple<beast::error_code, std::size_t> endOfTls(
      std::tuple<beast::error_code, std::size_t> result) {
    if (std::get<0>(result) == asio::ssl::error::stream_truncated) {
      std::get<0>(result) = asio::error::eof;
    }
    return result;
  }
  static constexpr std::chrono::milliseconds kTlsCloseWait{1000};
  static void cancelThunk(void* self) { static_cast<Connection*>(self)->cancel(); }

  tcp::socket socket_;  // unopened with a pipe
  Pipe* pipe_ = nullptr;
  std::unique_ptr<TlsStream> tls_;  // after startTls(); refers to socket_
  beast::flat_buffer buffer_;
  Deadline deadline_;
  std::string owed_;
  std::chrono::milliseconds write_timeout_ = kNoTimeout;
};

// Feeds the buffered bytes to the parser; false (with `ec` unset) when it needs more.
template <typename Parser>
bool feed(Connection& connection, Parser& parser, beast::error_code& ec) {
  auto& buffer = connection.buffer();
  if (buffer.size() == 0) return false;
  const bool in_head = !parser.is_header_done();
  const std::size_t used = parser.put(buffer.data(), ec);
  // The whole header block is parsed in one put(), from the start of the buffer.
  if (!ec && in_head && parser.is_header_done() &&
      hasObsFold({static_cast<const char*>(buffer.data().data()), used})) {
    ec = bhttp::error::bad_field;
  }
  buffer.consume(used);
  if (ec != bhttp::error::need_more) return true;
  ec = {};
  return false;
}

// Parses until `done` holds, reading more as needed; Beast's own read loop (its end of
// stream rules: end_of_stream before the first byte, partial_message after it).
template <typename Parser, typename Done>
asio::awaitable<beast::error_code> parseUntil(Connection& connection, Parser& parser, Done done) {
  beast::error_code ec;
  while (!done()) {
    if (feed(connection, parser, ec)) {
      if (ec) co_return ec;
      continue;
    }
    if (connection.readsDirectly()) {  // the usual case, without fill()'s frame
      const std::size_t room = connection.readRoom();
      if (room == 0) co_return bhttp::error::buffer_overflow;
      auto [read_ec, n] =
          co_await connection.socket().async_read_some(connection.buffer().prepare(room), kNoThrow);
      ec = connection.afterRead(read_ec, n);
    } else {
      ec = co_await connection.fill();
    }
    if (ec == asio::error::eof) {
      ec = {};
      if (parser.got_some()) {
        parser.put_eof(ec);
        if (!ec) continue;
      } else {
        ec = bhttp::error::end_of_stream;
      }
    }
    if (ec) co_return ec;
  }
  co_return ec;
}

// The read buffer's bound: a whole header block and the listener's headroom, saturating (a
// listener without a bound, the Runtime API's, sets the headroom to max()).
std::size_t bufferLimit(const HttpLimits& limits);

// A request that failed so: the client is slow or gone, or the connection was closed here
// (closeSessions), or a "100 Continue" could not be written. Nothing to answer.
bool endsQuietly(const beast::error_code& ec);

}  // namespace portcullis::net::h1
