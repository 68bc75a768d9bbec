/**
 * The page's HTML: an empty frame that web/app.ts fills from the snapshot.
 * It holds nothing an agent sent, so it is a constant.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MCP</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header class="top">
  <h1>MCP</h1>
  <span id="summary" class="summary"></span>
  <span id="connection" class="connection" data-state="connecting">connecting…</span>
</header>
<main>
  <section id="nodes" class="nodes" aria-label="Nodes"></section>
  <section class="panel" aria-labelledby="services-title">
    <h2 id="services-title">Services</h2>
    <div id="services"></div>
  </section>
  <div class="columns">
    <section class="panel" aria-labelledby="routes-title">
      <h2 id="routes-title">Routes</h2>
      <div id="routes"></div>
    </section>
    <section class="panel" aria-labelledby="events-title">
      <h2 id="events-title">Recent events</h2>
      <div id="events"></div>
    </section>
  </div>
</main>
<aside id="detail" class="detail" hidden aria-labelledby="detail-title">
  <header>
    <h2 id="detail-title"></h2>
    <button type="button" id="detail-refresh">Refresh</button>
    <button type="button" id="detail-close" aria-label="Close">×</button>
  </header>
  <div id="detail-body"></div>
</aside>
<noscript>This page needs JavaScript: it follows the nodes live.</noscript>
</body>
</html>
`;
