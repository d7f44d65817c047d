extension Assets {
    /// The page's script: renders the `state`, `operation` and `migration` events of `/events` (server-sent
    /// events; the page never polls) and posts the actions. Every value is written with
    /// `textContent` or as an attribute value, never parsed as HTML.
    static let script = #"""
    "use strict";
    const sections = {};
    const operations = new Map();
    const liveMigrations = new Map();
    let snapshot = null;

    function h(tag, attrs, ...children) {
      const node = document.createElement(tag);
      for (const [key, value] of Object.entries(attrs || {})) {
        if (key === "class") node.className = value;
        else if (key === "width") node.style.width = value; // CSSOM: the policy forbids style attributes
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, String(value));
      }
      for (const child of children.flat()) {
        if (child === null || child === undefined || child === false) continue;
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
      return node;
    }

    function bar(fraction, label, value) {
      const pct = Math.max(0, Math.min(100, fraction * 100));
      return [h("div", {class: "label"}, h("span", {}, label), h("span", {}, value)),
              h("div", {class: "bar" + (pct > 85 ? " hot" : "")}, h("span", {width: pct.toFixed(1) + "%"}))];
    }

    // Replaces a section's content only when its data changed, keeping the choices in its selects.
    function render(id, data, build) {
      const key = JSON.stringify(data);
      if (sections[id] === key) return;
      sections[id] = key;
      const root = document.getElementById(id);
      const chosen = {};
      root.querySelectorAll("select[data-vm]").forEach(s => { chosen[s.dataset.vm] = s.value; });
      root.replaceChildren(...[build()].flat());
      root.querySelectorAll("select[data-vm]").forEach(s => {
        if (chosen[s.dataset.vm] && [...s.options].some(o => o.value === chosen[s.dataset.vm])) s.value = chosen[s.dataset.vm];
      });
    }

    function say(text, isError) {
      const node = document.getElementById("message");
      node.textContent = text;
      node.className = "message" + (isError ? " error" : "");
      node.hidden = false;
    }

    async function post(path, body) {
      try {
        const response = await fetch(path, {method: "POST", credentials: "same-origin",
                                            headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) { say(answer.error || ("refused: HTTP " + response.status), true); return null; }
        return answer;
      } catch (error) { say("the dashboard cannot be reached: " + error, true); return null; }
    }

    async function migrate(vm) {
      const select = document.querySelector("select[data-vm=\"" + CSS.escape(vm) + "\"]");
      const to = select ? select.value : "auto";
      const answer = await post("/api/migrate", {vm: vm, to: to});
      if (answer) say("migration of " + vm + " to " + to + " started (" + answer.operation + ")", false);
    }

    async function apply(id) {
      const answer = await post("/api/drs/apply", {id: id});
      if (answer) say(answer.text, false);
    }

    async function maintenance(host, action) {
      const answer = await post("/api/maintenance", {host: host, action: action});
      if (answer) say(host + ": " + answer.state, false);
    }

    function memberCard(m, drsHost) {
      const load = drsHost ? drsHost.load : 0;
      return h("div", {class: "card", "data-member": m.host},
        h("h3", {}, h("span", {}, m.host + (m.local ? " (this host)" : "")), h("span", {class: "status " + m.status}, m.status)),
        h("div", {class: "muted"}, m.address + " · " + m.cores + " cores · " + m.vms + " VMs · " + m.migrations + " migrating"),
        bar(m.cores > 0 ? m.load / m.cores : m.load, "CPU load", m.load.toFixed(2)),
        bar(load, "DRS load (of capacity)", (load * 100).toFixed(0) + "%"),
        h("div", {class: "label"}, h("span", {}, "memory free"), h("span", {}, (m.memoryFreeMiB / 1024).toFixed(1) + " GiB")),
        drsHost && drsHost.state !== "available" ? h("div", {class: "status " + drsHost.state}, drsHost.state) : null);
    }

    function vmTable(host, rows, local, others) {
      const head = h("tr", {}, h("th", {}, "VM"), h("th", {}, local ? "state" : "DRS"), h("th", {}, "memory"), h("th", {}, local ? "migrate to" : "CPU demand"), h("th", {}, ""));
      const body = rows.map(vm => local
        ? h("tr", {"data-vm-row": vm.name}, h("td", {}, vm.name), h("td", {}, h("span", {class: "status " + vm.state}, vm.state)),
            h("td", {}, vm.memoryMiB + " MiB"),
            h("td", {}, h("select", {"data-vm": vm.name}, h("option", {value: "auto"}, "auto (best host)"),
                                     others.map(o => h("option", {value: o}, o)))),
            h("td", {}, h("button", {"data-migrate": vm.name, disabled: vm.state !== "running", onclick: () => migrate(vm.name)}, "Migrate")))
        : h("tr", {"data-vm-row": vm.name}, h("td", {}, vm.name), h("td", {}, vm.busy ? "busy (migrating)" : vm.movable ? "movable" : "held"),
            h("td", {}, vm.memoryMiB + " MiB"), h("td", {}, (vm.cpuDemandMilli / 1000).toFixed(2) + " cores"), h("td", {})));
      return h("div", {class: "host-block", "data-host": host}, h("h3", {}, host + (local ? " (this host: migrate from here)" : "")),
               rows.length ? h("table", {}, head, body) : h("p", {class: "muted"}, "no VMs"));
    }

    function renderState(s) {
      snapshot = s;
      document.getElementById("host").textContent = s.host + " · " + s.software;
      render("problems", s.problems, () => s.problems.map(p => h("li", {}, p)));
      const drsHosts = new Map(((s.drs && s.drs.hosts) || []).map(x => [x.host, x]));
      render("members", [s.members.map(m => [m.host, m.status, m.cores, m.vms, m.migrations, m.load.toFixed(2), m.memoryFreeMiB, m.address]), s.drs && s.drs.hosts],
             () => s.members.map(m => memberCard(m, drsHosts.get(m.host))));
      const alive = s.members.filter(m => m.status === "alive").map(m => m.host);
      render("vms", [s.vms, s.localVMs, alive, s.host], () => {
        const others = alive.filter(x => x !== s.host);
        const hosts = [...new Set([s.host, ...s.members.map(m => m.host), ...s.vms.map(v => v.host)])].filter(Boolean);
        return hosts.map(host => host === s.host ? vmTable(host, s.localVMs, true, others)
                                                 : vmTable(host, s.vms.filter(v => v.host === host), false, []));
      });
      render("drs", s.drs, () => s.drs ? "automation " + s.drs.automation + " · threshold " + s.drs.threshold + " · imbalance "
             + s.drs.imbalance.toFixed(3) + " (target " + s.drs.target.toFixed(3) + ") · moves started here " + s.drs.movesStarted : "DRS: no answer");
      render("recommendations", s.recommendations, () => s.recommendations.length === 0
        ? h("tr", {}, h("td", {class: "muted"}, "no recommendation: the mesh is balanced"))
        : [h("tr", {}, ["id", "VM", "from", "to", "reason", "imbalance", ""].map(x => h("th", {}, x)))].concat(s.recommendations.map(r =>
            h("tr", {}, h("td", {}, r.id), h("td", {}, r.vmName), h("td", {}, r.from), h("td", {}, r.to), h("td", {}, r.reason),
              h("td", {}, r.imbalanceBefore.toFixed(3) + " → " + r.imbalanceAfter.toFixed(3)),
              h("td", {}, h("button", {"data-apply": r.id, onclick: () => apply(r.id)}, "Apply"))))));
      const inMaintenance = new Map(s.maintenance.map(x => [x.host, x]));
      render("maintenance", [s.members.map(m => m.host), s.maintenance], () =>
        [h("tr", {}, ["host", "state", "remaining", "blocked", ""].map(x => h("th", {}, x)))].concat(s.members.map(m => {
          const state = inMaintenance.get(m.host);
          return h("tr", {"data-maintenance": m.host}, h("td", {}, m.host),
            h("td", {}, h("span", {class: "status"}, state ? state.state : "in service")),
            h("td", {}, state ? state.remaining.join(", ") : ""),
            h("td", {}, state ? state.blocked.map(b => b.vm + ": " + b.reason).join("; ") : ""),
            h("td", {}, state ? h("button", {class: "quiet", onclick: () => maintenance(m.host, "exit")}, "Exit maintenance")
                              : h("button", {class: "quiet", onclick: () => maintenance(m.host, "enter")}, "Enter maintenance")));
        })));
      render("history", s.migrations, () =>
        [h("tr", {}, ["VM", "role", "peer", "phase", "started", "downtime", "total", "result"].map(x => h("th", {}, x)))].concat(
          s.migrations.map(r => h("tr", {}, h("td", {}, r.vm), h("td", {}, r.role), h("td", {}, r.peer), h("td", {}, r.phase),
            h("td", {}, new Date(r.startedAt * 1000).toLocaleTimeString()),
            h("td", {}, r.report ? r.report.downtimeMs + " ms" : ""), h("td", {}, r.report ? r.report.totalMs + " ms" : ""),
            h("td", {}, r.error ? r.error : (r.endedAt ? "ok" : "running"))))));
      for (const op of s.operations) operations.set(op.id, op);
      renderOperations();
      for (const m of s.live || []) if (!liveMigrations.has(m.migration) || liveMigrations.get(m.migration).time < m.time) liveMigrations.set(m.migration, m);
      renderLive();
    }

    // Every migration of this host, from the agent's events: progress bars for the source side.
    function renderLive() {
      const list = [...liveMigrations.values()].reverse();
      render("live-migrations", list, () => list.length === 0 ? h("p", {class: "muted"}, "none since this page opened") : list.map(m => {
        const p = m.progress;
        const pct = m.ended ? 100 : (p ? p.percent : 0);
        const state = m.ended ? (m.phase === "aborted" || m.phase === "discarded" ? "failed" : "done") : "running";
        const detail = m.role + " · " + m.phase + (p && !m.ended ? " · round " + p.iteration + " · " + p.mbPerSecond.toFixed(1) + " MB/s" : "");
        return h("div", {class: "op", "data-live": m.migration, "data-state": state},
          h("div", {class: "label"}, h("span", {}, m.vm + (m.role === "source" ? " → " : " ← ") + m.peer),
            h("span", {class: "status " + state, "data-live-state": state}, state)),
          h("div", {class: "bar"}, h("span", {width: pct.toFixed(1) + "%", "data-live-percent": pct.toFixed(1)})),
          h("div", {class: "muted", "data-live-detail": m.migration}, detail));
      }));
    }

    function renderOperations() {
      const list = [...operations.values()].reverse();
      render("operations", list, () => list.length === 0 ? h("p", {class: "muted"}, "none started from this page") : list.map(op => {
        const p = op.progress;
        const pct = op.state === "done" ? 100 : (p ? p.percent : 0);
        const detail = op.state === "done" && op.report
          ? "done: downtime " + op.report.downtimeMs + " ms, total " + op.report.totalMs + " ms, " + (op.report.transferredBytes / 1e6).toFixed(1) + " MB"
          : op.state === "failed" ? "failed: " + op.error
          : p ? p.phase + " · round " + p.iteration + " · " + p.mbPerSecond.toFixed(1) + " MB/s" : "starting";
        return h("div", {class: "op", id: op.id, "data-state": op.state},
          h("div", {class: "label"}, h("span", {}, op.vm + " → " + op.to), h("span", {class: "status " + op.state, "data-op-state": op.state}, op.state)),
          h("div", {class: "bar"}, h("span", {width: pct.toFixed(1) + "%"})),
          h("div", {class: "muted", "data-op-detail": op.id}, detail));
      }));
    }

    function connect() {
      const live = document.getElementById("live");
      const events = new EventSource("/events");
      events.onopen = () => { live.textContent = "live"; live.className = "live"; };
      events.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
      events.addEventListener("state", e => renderState(JSON.parse(e.data)));
      events.addEventListener("operation", e => { const op = JSON.parse(e.data); operations.set(op.id, op); renderOperations(); });
      events.addEventListener("migration", e => { const m = JSON.parse(e.data); liveMigrations.set(m.migration, m); renderLive(); });
    }

    document.addEventListener("DOMContentLoaded", connect);
    """#
}
