#pragma once
// The transport concepts the stream protocol runs over: anything that delivers JSON text messages between a
// server and its linked users. No threads inside: the caller drives the transport, the transport calls back.
// Messages travel as text (what goes on a WebSocket). A server transport reads each message once (a
// krmx::Message, see core/message.hpp) and hands it on scanned; a transport of your own reads frames with a
// krmx::MessageReader.
//
// Implementations: krmx::net::Session (the Krmx session, without I/O), which krmx::net::WebSocketServer
// (sockets) and krmx::testing::Hub (in-process, manual clock) run.

#include <concepts>
#include <functional>
#include <string>
#include <string_view>

#include "krmx/core/message.hpp"
#include "krmx/core/shared_text.hpp"
#include "krmx/core/subscription.hpp"

namespace krmx {

/// `f(std::string_view username)`: a user linked or unlinked (server side), or this client linked as that
/// user (client side).
using UserCallback = std::function<void(std::string_view username)>;
/// `f(std::string_view username, const krmx::Message& message)`: a message from a linked user, read once.
using UserMessageCallback = std::function<void(std::string_view username, const Message& message)>;
/// `f(std::string_view text)`: a message from the server.
using MessageCallback = std::function<void(std::string_view text)>;
/// `f()`: this client unlinked (or lost its connection); or time moved (see `on_tick`).
using NoticeCallback = std::function<void()>;

/// The server side: learn that users link and unlink, receive their messages, send to one user, broadcast
/// to every linked user. `on_link` must fire before any message of that link is delivered, and what the
/// callback sends must reach the user after the link was accepted (that is where history goes out).
template <class T>
concept ServerTransport = requires(T& t, std::string_view user, std::string text, UserCallback on_user,
                                   UserMessageCallback on_message) {
    { t.on_link(on_user) } -> std::same_as<Subscription>;
    { t.on_unlink(on_user) } -> std::same_as<Subscription>;
    { t.on_message(on_message) } -> std::same_as<Subscription>;
    t.send(user, std::move(text));
    t.broadcast(std::move(text));
};

/// A server transport that also sends a krmx::SharedText as it is: one text for many users without a copy
/// each (DomainHost copies for transports without it).
template <class T>
concept SharedTextTransport = requires(T& t, std::string_view user, const SharedText& text) { t.send(user, text); };

/// The client side: learn its own link (with its username) and unlink, receive messages, send one.
/// Optionally `on_tick(NoticeCallback) -> Subscription`, fired when time moves, drives expiry.
template <class T>
concept ClientTransport = requires(T& t, std::string text, UserCallback on_link, NoticeCallback on_unlink,
                                   MessageCallback on_message) {
    { t.on_link(on_link) } -> std::same_as<Subscription>;
    { t.on_unlink(on_unlink) } -> std::same_as<Subscription>;
    { t.on_message(on_message) } -> std::same_as<Subscription>;
    t.send(std::move(text));
};

/// A client transport that also says when time moves (then clients expire their pending events on it).
template <class T>
concept TickingTransport = requires(T& t, NoticeCallback on_tick) {
    { t.on_tick(on_tick) } -> std::same_as<Subscription>;
};

namespace detail {

// One readable message per missing piece, instead of a wall of unsatisfied constraints.
template <class T>
constexpr bool check_server_transport() {
    static_assert(
        requires(T & t, UserCallback f) {
            { t.on_link(f) } -> std::same_as<krmx::Subscription>;
        },
        "krmx::ServerTransport: needs `krmx::Subscription on_link(krmx::UserCallback)`");
    static_assert(
        requires(T & t, UserCallback f) {
            { t.on_unlink(f) } -> std::same_as<krmx::Subscription>;
        },
        "krmx::ServerTransport: needs `krmx::Subscription on_unlink(krmx::UserCallback)`");
    static_assert(
        requires(T & t, UserMessageCallback f) {
            { t.on_message(f) } -> std::same_as<krmx::Subscription>;
        },
        "krmx::ServerTransport: needs `krmx::Subscription on_message(krmx::UserMessageCallback)`");
    static_assert(
        requires(T & t, std::string_view user, std::string text) { t.send(user, std::move(text)); },
        "krmx::ServerTransport: needs `send(std::string_view username, std::string text)`");
    static_assert(
        requires(T & t, std::string text) { t.broadcast(std::move(text)); },
        "krmx::ServerTransport: needs `broadcast(std::string text)` (to every linked user)");
    return true;
}

template <class T>
constexpr bool check_client_transport() {
    static_assert(
        requires(T & t, UserCallback f) {
            { t.on_link(f) } -> std::same_as<krmx::Subscription>;
        },
        "krmx::ClientTransport: needs `krmx::Subscription on_link(krmx::UserCallback)` (own username)");
    static_assert(
        requires(T & t, NoticeCallback f) {
            { t.on_unlink(f) } -> std::same_as<krmx::Subscription>;
        },
        "krmx::ClientTransport: needs `krmx::Subscription on_unlink(krmx::NoticeCallback)`");
    static_assert(
        requires(T & t, MessageCallback f) {
            { t.on_message(f) } -> std::same_as<krmx::Subscription>;
        },
        "krmx::ClientTransport: needs `krmx::Subscription on_message(krmx::MessageCallback)`");
    static_assert(
        requires(T & t, std::string text) { t.send(std::move(text)); },
        "krmx::ClientTransport: needs `send(std::string text)`");
    return true;
}

}  // namespace detail
}  // namespace krmx
