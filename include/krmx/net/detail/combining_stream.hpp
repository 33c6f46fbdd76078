#pragma once
// The layer under a server connection's WebSocket that combines writes. Every write (a frame the server
// writes itself, Beast's pings, pongs and close frame, the upgrade response) is copied into a buffer, whole,
// and completes at once; the buffer goes to the socket in one write once the handlers that are ready have
// run. A broadcast under load then costs one system call per connection for all the frames of that turn of
// the event loop, not one per frame (the kernel's share of a small write, not the copy, is what a WebSocket
// server pays for). Order is kept, and frames never interleave: everything passes through the same buffer
// in whole frames.
//
// A large shared frame (krmx::SharedText of at least `reference_bytes`: a history page, a projection's set,
// a big event sent to a whole room) is not copied: the buffer keeps a reference to it, and the flush hands the
// socket the copied bytes and the shared texts together (scatter/gather). A page of a megabyte sent to a
// thousand connections then holds one megabyte, not a gigabyte. Small frames are copied: each referenced
// frame is two pieces of the gather list, and Asio hands the kernel 64 pieces per call, so referencing the
// 150-byte events of a 1000-player room took ten times the system calls and made it about ten times slower
// (tests/benchmarks/run_open_load.sh, "one room").
//
// Nothing is held back: `unflushed_bytes()` tells the owner how much the socket has not taken yet, so that it
// can bound a slow reader (ServerConnection counts it against max_queued_bytes). A failed socket write is
// remembered, and every later write completes with that error.
//
// A template over the byte stream below it: Beast's tcp_stream for plain connections, an SSL stream over one
// for TLS (krmx/net/tls.hpp), where the combined write is also one TLS record per turn instead of one per frame.

#include <atomic>
#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include "krmx/core/shared_text.hpp"

namespace krmx::net::detail {

/// Capacity every CombiningStream of the process has given back (see WebSocketServerOptions::
/// return_memory_after): a server trims the allocator once a burst's buffers add up.
inline std::atomic<std::size_t> combining_bytes_released{0};

template <class NextLayer>
class BasicCombiningStream {
  public:
    using next_layer_type = NextLayer;
    using executor_type = typename next_layer_type::executor_type;

    /// `args` make the next layer (a socket; a socket and an SSL context).
    template <class... Args>
    explicit BasicCombiningStream(Args&&... args) : next_(std::forward<Args>(args)...) {}
    BasicCombiningStream(BasicCombiningStream&&) = delete;
    BasicCombiningStream& operator=(BasicCombiningStream&&) = delete;
    // Handlers still in flight see `closed` and touch nothing of this object.
    ~BasicCombiningStream() { state_->closed = true; }

    [[nodiscard]] executor_type get_executor() noexcept { return next_.get_executor(); }
    [[nodiscard]] next_layer_type& next_layer() noexcept { return next_; }
    [[nodiscard]] const next_layer_type& next_layer() const noexcept { return next_; }

    /// Whose lifetime covers this layer (the connection that holds it): a flush in flight keeps it alive until
    /// the write completes, since the layer below may be touched until then (an SSL stream's write is).
    void keep_alive(std::weak_ptr<void> owner) noexcept { owner_ = std::move(owner); }

    /// Shared payloads at least this long are referenced, not copied.
    static constexpr std::size_t reference_bytes = 4096;

    /// Bytes written to this layer that the socket has not taken yet (referenced payloads included).
    [[nodiscard]] std::size_t unflushed_bytes() const noexcept {
        const auto& s = *state_;
        return s.pending.size() + s.flushing.size() + s.pending_referenced + s.flushing_referenced;
    }

    /// Appends one whole frame, `header` then `payload`, after everything written before; it goes out with
    /// the next flush. False, and nothing appended, once a socket write has failed.
    bool write_frame(std::string_view header, std::string_view payload) {
        if (state_->error) return false;
        auto& pending = state_->pending;
        pending.insert(pending.end(), header.begin(), header.end());
        pending.insert(pending.end(), payload.begin(), payload.end());
        schedule_flush();
        return true;
    }
    /// The same with a shared payload: referenced when it is long (kept alive until the socket took it).
    bool write_frame(std::string_view header, const SharedText& payload) {
        if (payload->size() < reference_bytes) return write_frame(header, std::string_view{*payload});
        auto& state = *state_;
        if (state.error) return false;
        state.pending.insert(state.pending.end(), header.begin(), header.end());
        state.pending_refs.push_back(Reference{state.pending.size(), payload});
        state.pending_referenced += payload->size();
        schedule_flush();
        return true;
    }

    template <class MutableBufferSequence, class ReadHandler>
    auto async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
        return next_.async_read_some(buffers, std::forward<ReadHandler>(handler));
    }

    template <class ConstBufferSequence, class WriteHandler>
    auto async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
        return boost::asio::async_initiate<WriteHandler, void(boost::beast::error_code, std::size_t)>(
            [this](auto&& done, const ConstBufferSequence& data) {
                const auto error = state_->error;
                std::size_t taken = 0;
                if (!error) {
                    taken = boost::asio::buffer_size(data);
                    auto& pending = state_->pending;
                    const std::size_t at = pending.size();
                    pending.resize(at + taken);
                    boost::asio::buffer_copy(boost::asio::buffer(pending.data() + at, taken), data);
                    schedule_flush();
                }
                boost::asio::post(get_executor(), boost::beast::bind_front_handler(
                                                      std::forward<decltype(done)>(done), error, taken));
            },
            handler, buffers);
    }

  private:
    // Buffers above this are given back once empty (re-growing one is cheap next to a system call).
    static constexpr std::size_t kept_capacity = 8 * 1024;

    // A shared payload that goes out after the first `at` copied bytes (and after the references before it).
    struct Reference {
        std::size_t at;
        SharedText text;
    };

    struct State {
        std::vector<char> pending;   // written, waiting for the next flush
        std::vector<char> flushing;  // handed to the socket, not yet taken
        std::vector<Reference> pending_refs;
        std::vector<Reference> flushing_refs;
        std::size_t pending_referenced = 0;  // bytes of pending_refs' texts
        std::size_t flushing_referenced = 0;
        std::vector<boost::asio::const_buffer> gather;  // the flush in flight, copied and referenced pieces
        boost::beast::error_code error;
        bool flush_posted = false;
        bool closed = false;
    };

    static void give_back_if_large(std::vector<char>& buffer) noexcept {
        if (buffer.capacity() <= kept_capacity) return;
        combining_bytes_released.fetch_add(buffer.capacity(), std::memory_order_relaxed);
        std::vector<char>{}.swap(buffer);
    }

    // After the handlers that are ready now, so that what they write goes in the same flush.
    void schedule_flush() {
        if (state_->flush_posted || !state_->flushing.empty()) return;
        state_->flush_posted = true;
        boost::asio::post(get_executor(), [this, state = state_] {
            if (state->closed) return;
            state->flush_posted = false;
            flush();
        });
    }

    void flush() {
        auto& state = *state_;
        if (state.pending.empty() || !state.flushing.empty() || state.error) return;
        state.flushing.swap(state.pending);
        state.flushing_refs.swap(state.pending_refs);
        std::swap(state.flushing_referenced, state.pending_referenced);
        if (state.flushing_refs.empty()) return write(boost::asio::buffer(state.flushing));
        // Copied and referenced pieces in order; the list lives in the state until the write completes.
        auto& gather = state.gather;
        gather.clear();
        std::size_t copied = 0;
        for (const auto& ref : state.flushing_refs) {
            if (ref.at > copied) gather.emplace_back(state.flushing.data() + copied, ref.at - copied);
            gather.emplace_back(ref.text->data(), ref.text->size());
            copied = ref.at;
        }
        if (state.flushing.size() > copied) {
            gather.emplace_back(state.flushing.data() + copied, state.flushing.size() - copied);
        }
        write(gather);
    }

    template <class ConstBufferSequence>
    void write(const ConstBufferSequence& buffers) {
        boost::asio::async_write(next_, buffers,
                                 [this, keep = state_, owner = owner_.lock()](boost::beast::error_code ec,
                                                                              std::size_t) {
                                     if (keep->closed) return;
                                     keep->flushing.clear();
                                     keep->flushing_refs.clear();
                                     keep->flushing_referenced = 0;
                                     keep->gather.clear();
                                     // An idle connection keeps no burst-sized buffers: a thousand users
                                     // linking at once queue a thousand `joined` frames at each of them.
                                     give_back_if_large(keep->flushing);
                                     if (keep->pending.empty()) give_back_if_large(keep->pending);
                                     if (ec) {
                                         keep->error = ec;
                                         keep->pending.clear();
                                         keep->pending_refs.clear();
                                         keep->pending_referenced = 0;
                                         return;
                                     }
                                     flush();
                                 });
    }

    next_layer_type next_;
    std::shared_ptr<State> state_ = std::make_shared<State>();
    std::weak_ptr<void> owner_;
};

/// The plain server connection's layer: straight to the TCP socket.
using CombiningStream = BasicCombiningStream<boost::beast::tcp_stream>;

// Beast's WebSocket tears its next layer down after a close handshake; here that is the next layer's own
// teardown (the socket's; for TLS, close_notify first, from Beast's SSL stream).
template <class NextLayer>
void teardown(boost::beast::role_type role, BasicCombiningStream<NextLayer>& stream, boost::beast::error_code& ec) {
    using boost::beast::websocket::teardown;
    teardown(role, stream.next_layer(), ec);
}

template <class NextLayer, class TeardownHandler>
void async_teardown(boost::beast::role_type role, BasicCombiningStream<NextLayer>& stream,
                    TeardownHandler&& handler) {
    using boost::beast::websocket::async_teardown;
    async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace krmx::net::detail
