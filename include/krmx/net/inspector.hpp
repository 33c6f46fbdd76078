#pragma once
// krmx::net::Inspector: a page on the WebSocket server's port that shows its domains, each one's event log
// (dispatchers and positions, live) and a slider that shows the state at any position: the tool a developer
// opens to see how a game reached a state nobody expected. Off unless made, and it needs a token.
//
//   krmx::net::Inspector inspector{server, {.token = "s3cret"}};   // http://host:port/inspect?token=s3cret
//
// Routes (GET; each needs the token, as `?token=` or `Authorization: Bearer`, compared in constant time;
// otherwise 401):
//   /inspect                                      the page (it sends the token it was opened with)
//   /inspect/api/domains                          [{name, events, confirmed, held_from, durable, ...}]
//   /inspect/api/events?domain=D&from=N&count=M   [{position, dispatcher, event}] (at most 1000)
//   /inspect/api/state?domain=D&position=N        the state after the first N events, as JSON
// Events the domain no longer holds and past states are read from its store off the server's thread: such a
// request is answered 202 ("try again") until the answer is ready, then 200 once (answers are kept for a
// while, at most a few hundred). Errors are 400 (bad parameters) or 404 (no such domain), with `{"error"}`.
// The state is shown through the model's snapshot JSON (StreamModel::snapshots) or the State's to_json.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/net/detail/bearer.hpp"
#include "krmx/net/detail/query.hpp"
#include "krmx/net/http_route.hpp"
#include "krmx/net/websocket_server.hpp"

namespace krmx::net {

struct InspectorOptions {
    /// Required: requests must carry it (`?token=` or `Authorization: Bearer`).
    std::string token = {};
    /// Where the page is; the API is under `path + "/api/"`.
    std::string path = "/inspect";
};

/// The inspector's own counters.
struct InspectorStatistics {
    std::uint64_t served = 0;   ///< requests answered 200
    std::uint64_t pending = 0;  ///< requests answered 202 (the answer was being read)
    std::uint64_t refused = 0;  ///< requests without the right token: 401
};

namespace detail {

// The page: plain HTML and JavaScript, no build step. It reads the token from its own address.
inline std::string_view inspector_page() noexcept {
    return R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>krmx inspector</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1em; color: #222; }
h1 { font-size: 18px; } table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; }
#layout { display: flex; gap: 2em; align-items: flex-start; } #log { max-height: 70vh; overflow: auto; }
pre { background: #f6f6f6; padding: 8px; min-width: 20em; } .error { color: #b00; }
</style></head>
<body>
<h1>krmx inspector</h1>
<p><label>domain <select id="domains"></select></label> <span id="summary"></span></p>
<div id="layout">
 <div><h2>events</h2><p><button id="older">older</button> <span id="range"></span></p>
  <div id="log"><table><thead><tr><th>position</th><th>dispatcher</th><th>event</th></tr></thead><tbody id="events"></tbody></table></div></div>
 <div><h2>state at <span id="position-label">0</span></h2>
  <input id="position" type="range" min="0" max="0" value="0" style="width: 30em">
  <pre id="state"></pre><p id="error" class="error"></p></div>
</div>
<script>
const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
const base = location.pathname.replace(/\/$/, '');
const el = (id) => document.getElementById(id);
// An API call; 202 means the server is still reading its store: ask again.
const api = async (what, query) => {
  for (let tries = 0; tries < 600; ++tries) {
    const response = await fetch(`${base}/api/${what}?${new URLSearchParams(query)}`,
      { headers: { Authorization: `Bearer ${token}` } });
    if (response.status === 202) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }
  throw new Error('no answer');
};
let domain = params.get('domain') || '';
let confirmed = -1;     // not known yet
let first = null;       // the first event listed; null: the last 50
let following = true;   // the slider follows the newest event
let stateAsked = 0;
async function showEvents() {
  const from = first ?? Math.max(0, confirmed - 50);
  const list = await api('events', { domain, from, count: Math.max(0, confirmed - from) });
  const body = el('events');
  body.innerHTML = '';
  for (const e of list) {
    const row = body.insertRow();
    row.dataset.position = e.position;
    row.insertCell().textContent = e.position;
    row.insertCell().textContent = e.dispatcher;
    row.insertCell().textContent = JSON.stringify(e.event);
    row.onclick = () => { el('position').value = e.position + 1; following = false; showState(); };
  }
  el('range').textContent = `events ${from} to ${confirmed}`;
}
async function showState() {
  const position = Number(el('position').value);
  const asked = ++stateAsked;
  el('position-label').textContent = position;
  try {
    const state = await api('state', { domain, position });
    if (asked !== stateAsked) return;
    el('state').textContent = JSON.stringify(state, null, 2);
    el('state').dataset.position = position;
    el('error').textContent = '';
  } catch (error) {
    if (asked === stateAsked) el('error').textContent = error.message;
  }
}
let busy = false;
async function tick() {
  if (busy) return;
  busy = true;
  try {
    const list = await api('domains', {});
    const select = el('domains');
    if (select.options.length !== list.length) {
      select.innerHTML = '';
      for (const d of list) select.add(new Option(d.name, d.name));
    }
    if (!list.some((d) => d.name === domain) && list.length) domain = list[0].name;
    select.value = domain;
    const d = list.find((x) => x.name === domain);
    if (d) {
      el('summary').textContent = `${d.confirmed} events confirmed, held in memory from ${d.held_from}` +
        (d.durable ? ', durable' : '') + (d.snapshots ? `, snapshots saved: ${d.snapshots.saved}` : '');
      el('summary').dataset.confirmed = d.confirmed;
      if (d.confirmed !== confirmed) {
        confirmed = d.confirmed;
        el('position').max = confirmed;
        await showEvents();
        if (following) { el('position').value = confirmed; await showState(); }
      }
    }
  } catch (error) {
    el('error').textContent = error.message;
  }
  busy = false;
}
el('domains').onchange = () => { domain = el('domains').value; confirmed = -1; first = null; following = true; tick(); };
el('position').oninput = () => { following = Number(el('position').value) === confirmed; showState(); };
el('older').onclick = () => { first = Math.max(0, (first ?? Math.max(0, confirmed - 50)) - 50); showEvents(); };
tick();
setInterval(tick, 250);
</script></body></html>
)html";
}

}  // namespace detail

class Inspector {
  public:
    /// Serves the page and its API on `server` (which must outlive it). Throws std::invalid_argument
    /// without a token: the page shows every event and state, so it is never open to everyone.
    Inspector(WebSocketServer& server, InspectorOptions options) : server_(server), options_(std::move(options)) {
        if (options_.token.empty()) throw std::invalid_argument("krmx::net::Inspector: a token is required");
        server_.serve_http(options_.path, [this](const HttpRequest& r) { return page(r); });
        server_.serve_http(options_.path + "/api/domains", [this](const HttpRequest& r) { return domains(r); });
        server_.serve_http(options_.path + "/api/events", [this](const HttpRequest& r) { return events(r); });
        server_.serve_http(options_.path + "/api/state", [this](const HttpRequest& r) { return state(r); });
    }
    Inspector(const Inspector&) = delete;
    Inspector& operator=(const Inspector&) = delete;
    ~Inspector() {
        *alive_ = false;
        for (const char* route : {"", "/api/domains", "/api/events", "/api/state"}) {
            server_.stop_serving_http(options_.path + route);
        }
    }

    [[nodiscard]] const InspectorStatistics& statistics() const noexcept { return statistics_; }

  private:
    static HttpResponse json(unsigned status, const nlohmann::json& body) {
        return HttpResponse{status, "application/json", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
    }
    static HttpResponse error(unsigned status, std::string why) { return json(status, {{"error", std::move(why)}}); }

    bool allowed(const HttpRequest& request) {
        std::optional<std::string> given;
        if (const auto header = request.header("Authorization")) {
            if (const auto token = detail::bearer_token(*header)) given = std::string{*token};
        }
        if (!given) given = detail::query_value(request.query(), "token");
        if (given && detail::constant_time_equal(*given, options_.token)) return true;
        ++statistics_.refused;
        return false;
    }
    static HttpResponse unauthorized() {
        HttpResponse r = error(401, "the inspector needs its token");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
    }

    HttpResponse page(const HttpRequest& request) {
        if (!allowed(request)) return unauthorized();
        ++statistics_.served;
        return HttpResponse{200, "text/html; charset=utf-8", std::string{detail::inspector_page()},
                            {{"Cache-Control", "no-store"}}};
    }

    HttpResponse domains(const HttpRequest& request) {
        if (!allowed(request)) return unauthorized();
        nlohmann::json out = nlohmann::json::array();
        for (const auto& r : server_.host().reports()) {
            nlohmann::json d = {{"name", r.name},          {"events", r.events},
                                {"confirmed", r.confirmed}, {"held_from", r.held_from},
                                {"durable", r.durable},     {"history_bytes", r.history_bytes},
                                {"accepted", r.statistics.accepted}, {"refused", r.statistics.refused()}};
            if (r.snapshots) {
                d["snapshots"] = {{"saved", r.snapshots->saved}, {"restored", r.snapshots->restored},
                                  {"skipped", r.snapshots->skipped()}};
            }
            out.push_back(std::move(d));
        }
        ++statistics_.served;
        return json(200, out);
    }

    // A number parameter, or why not.
    static std::optional<std::size_t> number(std::string_view query, std::string_view name) {
        const auto text = detail::query_value(query, name);
        if (!text || text->empty() || text->size() > 18) return std::nullopt;
        std::size_t n = 0;
        for (const char c : *text) {
            if (c < '0' || c > '9') return std::nullopt;
            n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        return n;
    }

    HttpResponse events(const HttpRequest& request) {
        if (!allowed(request)) return unauthorized();
        const auto domain = detail::query_value(request.query(), "domain");
        const auto from = number(request.query(), "from");
        const auto count = number(request.query(), "count");
        if (!domain || !from || !count) return error(400, "events need domain, from and count");
        return answer("events|" + *domain + "|" + std::to_string(*from) + "|" + std::to_string(*count),
                      [&](InspectDone done) { server_.host().inspect_events(*domain, *from, *count, std::move(done)); },
                      *domain);
    }

    HttpResponse state(const HttpRequest& request) {
        if (!allowed(request)) return unauthorized();
        const auto domain = detail::query_value(request.query(), "domain");
        const auto position = number(request.query(), "position");
        if (!domain || !position) return error(400, "state needs domain and position");
        return answer("state|" + *domain + "|" + std::to_string(*position),
                      [&](InspectDone done) { server_.host().inspect_state(*domain, *position, std::move(done)); },
                      *domain);
    }

    // The answer under `key` when it is ready (once), else starts it (`start(done)`) and says 202.
    template <class Start>
    HttpResponse answer(const std::string& key, Start&& start, const std::string& domain) {
        if (const auto it = ready_.find(key); it != ready_.end()) {
            auto result = std::move(it->second);
            ready_.erase(it);
            return respond(std::move(result));
        }
        if (!asked_.contains(key)) {
            asked_.insert(key);
            start([this, alive = alive_, key, domain](nlohmann::json result, std::optional<std::string> why) {
                if (!*alive) return;
                asked_.erase(key);
                if (ready_.size() >= max_ready) ready_.erase(ready_.begin());
                ready_.insert_or_assign(key, Result{std::move(result), std::move(why), !server_.host().has_domain(domain)});
            });
            // Answered in the call (held in memory): no need to come back.
            if (const auto it = ready_.find(key); it != ready_.end()) {
                auto result = std::move(it->second);
                ready_.erase(it);
                return respond(std::move(result));
            }
        }
        ++statistics_.pending;
        return json(202, {{"pending", true}});
    }

    struct Result {
        nlohmann::json value;
        std::optional<std::string> error;
        bool no_domain = false;
    };
    HttpResponse respond(Result result) {
        if (result.error) return error(result.no_domain ? 404 : 400, std::move(*result.error));
        ++statistics_.served;
        return json(200, result.value);
    }

    static constexpr std::size_t max_ready = 256;
    WebSocketServer& server_;
    InspectorOptions options_;
    InspectorStatistics statistics_;
    std::map<std::string, Result> ready_;   // answers read off the loop, until asked for again
    std::set<std::string, std::less<>> asked_;  // reads under way
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // answers after the inspector is gone: dropped
};

}  // namespace krmx::net
