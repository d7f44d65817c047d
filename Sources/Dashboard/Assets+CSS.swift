/// The dashboard's stylesheet and script, served from the binary (no build step).
enum Assets {}

extension Assets {
    static let css = """
    :root { --bg: #f5f6f8; --card: #fff; --ink: #1d2430; --muted: #6b7280; --line: #e3e6ea;
            --ok: #1f9d55; --warn: #d97706; --bad: #dc2626; --accent: #2563eb; }
    * { box-sizing: border-box; }
    body { margin: 0; padding: 0 24px 32px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
           background: var(--bg); color: var(--ink); }
    header { display: flex; align-items: center; gap: 16px; padding: 14px 0; border-bottom: 1px solid var(--line); }
    header h1 { font-size: 20px; margin: 0; }
    header form { margin-left: auto; }
    h2 { font-size: 15px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 22px 0 8px; }
    .live { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #dcfce7; color: var(--ok); }
    .live.off { background: #fee2e2; color: var(--bad); }
    .cards { display: flex; flex-wrap: wrap; gap: 12px; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 250px; }
    .card h3 { margin: 0 0 6px; font-size: 15px; display: flex; justify-content: space-between; gap: 8px; }
    .status { font-size: 12px; padding: 1px 7px; border-radius: 9px; background: #e5e7eb; }
    .status.alive, .status.running, .status.done, .status.available { background: #dcfce7; color: var(--ok); }
    .status.suspect, .status.migrating, .status.evacuating, .status.incoming { background: #fef3c7; color: var(--warn); }
    .status.dead, .status.failed, .status.crashed { background: #fee2e2; color: var(--bad); }
    .bar { height: 10px; background: #eef0f3; border-radius: 5px; overflow: hidden; margin: 3px 0 6px; }
    .bar > span { display: block; height: 100%; background: var(--accent); transition: width .3s; }
    .bar.hot > span { background: var(--warn); }
    .label { display: flex; justify-content: space-between; color: var(--muted); font-size: 12px; }
    table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; min-width: 60%; }
    th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); }
    th { font-size: 12px; color: var(--muted); font-weight: 600; }
    .host-block { margin-bottom: 12px; }
    .host-block h3 { font-size: 14px; margin: 8px 0 4px; }
    button { font: inherit; padding: 4px 10px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
    button.quiet { background: transparent; color: var(--accent); }
    button:disabled { opacity: .5; cursor: default; }
    select { font: inherit; padding: 3px; }
    .message { padding: 8px 12px; border-radius: 6px; background: #e0e7ff; }
    .message.error { background: #fee2e2; color: var(--bad); }
    .problems { color: var(--bad); }
    .muted { color: var(--muted); }
    .op { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin-bottom: 8px; max-width: 720px; }
    body.login main { max-width: 360px; margin: 12vh auto; background: var(--card); padding: 24px; border-radius: 10px; border: 1px solid var(--line); }
    body.login input { width: 100%; padding: 8px; margin: 6px 0 12px; font: inherit; }
    .refused { color: var(--bad); }
    .hint { color: var(--muted); font-size: 12px; }
    """
}
