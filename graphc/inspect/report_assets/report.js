/* graphc report: draws the graphs of the page's data (see graphc/inspect/report_data.py) as SVG.
 *
 * Each phase's graph is a tree of groups: name scopes (from the "/" in node names), fused kernels, and
 * control-flow nodes (a loop, a cond) holding one always-open group per body, whose members may be kernels
 * and control-flow nodes again.
 * A group is drawn collapsed (one box) or expanded (a frame holding its members, laid out on their own).
 * Layout is layered (Sugiyama): break cycles by topological order, assign layers by longest path, add
 * dummy vertices on long edges, order layers by barycentre sweeps, place x by isotonic regression
 * towards the neighbours, route edges through their dummies.  An expanded group is laid out first and
 * then placed as one big vertex of its parent's layout.  No library, no network.
 */
(function () {
  "use strict";

  const D = JSON.parse(document.getElementById("graphc-data").textContent);
  const NODE_H = 34, BOX_H = 38, PAD = 10, HEAD = 22, GAP_X = 18, GAP_Y = 34, DUMMY_W = 6;
  const MAX_LABEL = 200, DEFAULT_VISIBLE = 60, MAX_RESULTS = 60, MIN_FIT_SCALE = 0.3, FAR_SCALE = 0.4, ZOOM_SETTLE_MS = 150;
  const FILL = { placeholder: "#dbeafe", variable: "#fef3c7", constant: "#f3f4f6", parameter: "#e0e7ff",
                 fused: "#dcfce7", assign: "#fee2e2", assign_add: "#fee2e2", kernel_output: "#ecfdf5" };
  const FAMILY_FILL = { reduction: "#fae8ff", linalg: "#ffedd5", nn: "#fce7f3", shape: "#f5f5f4" };

  // ---- small helpers ------------------------------------------------------------------------------
  const byId = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
                                                              '"': "&quot;", "'": "&#39;" }[c]));
  const opCount = (n) => `${n} op${n === 1 ? "" : "s"}`;
  const leaf = (name) => name.slice(name.lastIndexOf("/") + 1);
  const scopeOf = (name) => { const i = name.lastIndexOf("/"); return i < 0 ? "" : name.slice(0, i); };
  const measureCtx = document.createElement("canvas").getContext("2d");
  const widthCache = new Map();
  function textWidth(text, px, bold) {
    const key = (bold ? "b" : "") + px + "|" + text;
    let w = widthCache.get(key);
    if (w === undefined) {
      measureCtx.font = (bold ? "600 " : "") + px + "px system-ui, sans-serif";
      w = measureCtx.measureText(text).width;
      widthCache.set(key, w);
    }
    return w;
  }
  function clip(text, px, maxW, bold) {
    if (textWidth(text, px, bold) <= maxW) return text;
    let lo = 0, hi = text.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (textWidth(text.slice(0, mid) + "…", px, bold) <= maxW) lo = mid; else hi = mid - 1;
    }
    return text.slice(0, lo) + "…";
  }

  // ---- the model of one phase: nodes, the group tree and the edges ----------------------------------
  function buildModel(phaseIndex) {
    const phase = D.phases[phaseIndex];
    const nodes = new Map();   // key -> node
    const groups = new Map();  // id -> group; "" is the root
    const root = { id: "", kind: "root", label: "", parent: null, chain: [], children: [], order: 0,
                   count: 0, ops: 0 };
    groups.set("", root);
    function scopeGroup(path) {
      if (path === "") return root;
      let g = groups.get("s:" + path);
      if (g) return g;
      const parent = scopeGroup(scopeOf(path));
      g = { id: "s:" + path, kind: "scope", label: leaf(path), path: path, parent: parent.id,
            chain: parent.id === "" ? [] : parent.chain.concat([parent.id]), children: [], order: -1,
            count: 0, ops: 0 };
      groups.set(g.id, g);
      parent.children.push(g.id);
      return g;
    }
    function addChild(group, id, order) {
      group.children.push(id);
      for (let g = group; g; g = g.parent === null ? null : groups.get(g.parent)) {
        if (g.order < 0 || order < g.order) g.order = order;
        g.count += 1;
      }
    }
    const bodiesOf = new Map();  // node key -> its bodies: [{body, heading, text}]
    for (const [owner, body, heading, text] of phase.bodies) {
      if (!bodiesOf.has(owner)) bodiesOf.set(owner, []);
      bodiesOf.get(owner).push({ body: body, heading: heading, text: text, group: "b:" + owner + ":" + body });
    }
    function addMember(group, id) {  // into a kernel or body: not counted in the name scopes around it
      group.children.push(id);
      group.count += 1;
    }
    phase.nodes.forEach(([key, row, owner, out, body], order) => {
      const t = D.table[row];
      const n = { key: key, row: t, op: t[0], name: t[1], type: t[2], attrs: t[3], loc: t[4], family: t[5],
                  kind: t[6], out: !!out, order: order, kernel: owner || null, body: body || null, inputs: [],
                  users: [] };
      nodes.set(key, n);
      // a node inside a kernel or body is in its frame, whatever its name scope
      const parent = n.kernel ? groups.get(n.body === "kernel" ? "k:" + n.kernel : "b:" + n.kernel + ":" + n.body)
                              : scopeGroup(scopeOf(n.name));
      n.parent = parent.id;
      n.chain = parent.id === "" ? [] : parent.chain.concat([parent.id]);
      if (parent.kind === "body" && n.op !== "parameter") parent.ops += 1;
      const bodies = bodiesOf.get(key);
      let item = key;
      if (n.op === "fused" || bodies) {
        const k = { id: "k:" + key, kind: bodies ? "control" : "kernel", label: leaf(n.name), node: key,
                    parent: parent.id, chain: n.chain.slice(), children: [], order: order, count: 0,
                    ops: bodies ? 0 : t[7], bodies: bodies || [] };
        groups.set(k.id, k);
        n.group = item = k.id;
        for (const b of k.bodies) {
          groups.set(b.group, { id: b.group, kind: "body", label: b.heading, text: b.text, owner: key, parent: k.id,
                                chain: k.chain.concat([k.id]), children: [], order: order, count: 0, ops: 0 });
          k.children.push(b.group);
        }
      }
      if (n.kernel) addMember(parent, item); else addChild(parent, item, order);
    });
    const fed = new Set();  // "src>node": src is an input of node that one of its parameters stands for
    const edges = phase.edges.map(([s, d, kind, label, inner]) => {
      const e = { s: s, d: d, kind: kind, label: label, inner: inner };
      if (kind === "i") { nodes.get(s).users.push(d); nodes.get(d).inputs.push(s); }
      if (kind === "p") fed.add(s + ">" + nodes.get(d).kernel);
      return e;
    });
    for (const g of groups.values()) {
      g.children.sort((a, b) => itemOrder(a) - itemOrder(b));
    }
    function itemOrder(id) { const g = groups.get(id); return g ? g.order : nodes.get(id).order; }
    const names = new Map();
    for (const n of nodes.values()) names.set(n.name, n.key);
    return { index: phaseIndex, phase: phase, nodes: nodes, groups: groups, edges: edges, names: names,
             itemOrder: itemOrder, fed: fed };
  }

  // ---- layered layout of one set of items -----------------------------------------------------------
  // items: [{w, h, order}]; links: [[a, b]] item indices.  Returns positions (centre x, top y), size,
  // and for each link its route (points from a to b).
  function layered(items, links) {
    const n = items.length;
    let V = n;
    const succ = [], pred = [];
    for (let i = 0; i < n; i++) { succ.push([]); pred.push([]); }
    const oriented = links.map(([a, b]) => {
      const rev = items[a].order > items[b].order;
      const u = rev ? b : a, v = rev ? a : b;
      succ[u].push(v); pred[v].push(u);
      return { u: u, v: v, rev: rev };
    });
    // layers: longest path in topological (order) sequence, then sources pulled down to their users
    const byOrder = Array.from({ length: n }, (_, i) => i).sort((a, b) => items[a].order - items[b].order);
    const layer = new Int32Array(n);
    for (const v of byOrder) for (const u of pred[v]) if (layer[u] + 1 > layer[v]) layer[v] = layer[u] + 1;
    for (let k = n - 1; k >= 0; k--) {
      const v = byOrder[k];
      if (pred[v].length || !succ[v].length) continue;
      let m = Infinity;
      for (const s of succ[v]) m = Math.min(m, layer[s]);
      layer[v] = m - 1;
    }
    let L = 0;
    for (let i = 0; i < n; i++) L = Math.max(L, layer[i] + 1);
    // vertices: items, then dummies on long edges
    const vLayer = Array.from(layer), vW = items.map((it) => it.w), vH = items.map((it) => it.h);
    const vKey = items.map((it) => it.order);
    const up = items.map(() => []), down = items.map(() => []);
    for (const e of oriented) {
      let prev = e.u;
      e.path = [e.u];
      for (let l = layer[e.u] + 1; l < layer[e.v]; l++) {
        const d = V++;
        vLayer.push(l); vW.push(DUMMY_W); vH.push(0); vKey.push(items[e.u].order + 0.5);
        up.push([]); down.push([]);
        down[prev].push(d); up[d].push(prev);
        e.path.push(d);
        prev = d;
      }
      down[prev].push(e.v); up[e.v].push(prev);
      e.path.push(e.v);
    }
    const layers = Array.from({ length: L }, () => []);
    for (let v = 0; v < V; v++) layers[vLayer[v]].push(v);
    for (const row of layers) row.sort((a, b) => vKey[a] - vKey[b]);
    const pos = new Float64Array(V);
    const setPos = () => { for (const row of layers) row.forEach((v, i) => { pos[v] = i; }); };
    setPos();
    // crossing reduction: barycentre sweeps, keeping the best ordering seen
    const crossings = () => {
      let total = 0;
      for (let l = 0; l + 1 < L; l++) {
        const pairs = [];
        for (const v of layers[l]) for (const w of down[v]) pairs.push(pos[v] * V + pos[w]);
        if (pairs.length < 2) continue;
        pairs.sort((a, b) => a - b);
        const south = pairs.map((p) => p % V);
        total += inversions(south);
      }
      return total;
    };
    const sweeps = V > 20000 ? 1 : V > 5000 ? 3 : 8;
    let best = layers.map((row) => row.slice()), bestCross = crossings();
    for (let it = 0; it < sweeps && bestCross > 0; it++) {
      for (let l = 1; l < L; l++) orderByBarycentre(layers[l], up, pos);
      for (let l = L - 2; l >= 0; l--) orderByBarycentre(layers[l], down, pos);
      const c = crossings();
      if (c < bestCross) { bestCross = c; best = layers.map((row) => row.slice()); }
    }
    for (let l = 0; l < L; l++) layers[l] = best[l];
    setPos();
    // x: pack, then move towards the neighbours (isotonic regression keeps order and spacing)
    const x = new Float64Array(V);
    for (const row of layers) {
      let cur = 0;
      row.forEach((v, i) => { if (i) cur += sep(row[i - 1], v); x[v] = cur; });
    }
    function sep(a, b) { return (vW[a] + vW[b]) / 2 + (a >= n || b >= n ? GAP_X / 3 : GAP_X); }
    const place = (row, nbrs, both) => {
      const target = new Float64Array(row.length), weight = new Float64Array(row.length);
      row.forEach((v, i) => {
        let s = 0, c = 0;
        for (const w of nbrs[v]) { s += x[w]; c += 1; }
        if (both) for (const w of (nbrs === up ? down : up)[v]) { s += x[w]; c += 1; }
        target[i] = c ? s / c : x[v];
        weight[i] = c ? c + (v >= n ? 2 : 0) : 0.3;  // dummies pull harder: long edges stay straight
      });
      const gaps = row.map((v, i) => (i ? sep(row[i - 1], v) : 0));
      const fit = isotonic(target, weight, gaps);
      row.forEach((v, i) => { x[v] = fit[i]; });
    };
    for (let it = 0; it < 4; it++) {
      for (let l = 1; l < L; l++) place(layers[l], up, false);
      for (let l = L - 2; l >= 0; l--) place(layers[l], down, false);
    }
    for (let l = 0; l < L; l++) place(layers[l], up, true);
    // y: one band per layer, as tall as its tallest item
    const top = new Float64Array(L + 1), bandH = new Float64Array(L);
    for (let v = 0; v < V; v++) bandH[vLayer[v]] = Math.max(bandH[vLayer[v]], vH[v]);
    for (let l = 0; l < L; l++) top[l + 1] = top[l] + bandH[l] + GAP_Y;
    let minX = Infinity, maxX = -Infinity;
    for (let v = 0; v < V; v++) { minX = Math.min(minX, x[v] - vW[v] / 2); maxX = Math.max(maxX, x[v] + vW[v] / 2); }
    if (V === 0) { minX = 0; maxX = 0; }
    const cx = [], ty = [];
    for (let i = 0; i < n; i++) {
      cx.push(x[i] - minX);
      ty.push(top[layer[i]] + (bandH[layer[i]] - vH[i]) / 2);
    }
    const routes = oriented.map((e) => {
      const pts = e.path.map((v, k) => {
        if (k === 0) return [x[v] - minX, ty[v] + vH[v]];
        if (k === e.path.length - 1) return [x[v] - minX, ty[v]];
        const l = vLayer[v];
        return [x[v] - minX, top[l] + bandH[l] / 2];
      });
      return e.rev ? { pts: pts.reverse(), back: true } : { pts: pts, back: false };
    });
    return { cx: cx, ty: ty, w: maxX - minX, h: L ? top[L] - GAP_Y : 0, routes: routes };
  }

  function orderByBarycentre(row, nbrs, pos) {
    const bary = new Map();
    for (const v of row) {
      let s = 0, c = 0;
      for (const w of nbrs[v]) { s += pos[w]; c += 1; }
      bary.set(v, c ? s / c : pos[v]);
    }
    row.sort((a, b) => bary.get(a) - bary.get(b) || pos[a] - pos[b]);
    row.forEach((v, i) => { pos[v] = i; });
  }

  function inversions(a) {  // merge-sort inversion count
    let count = 0;
    let src = a.slice(), dst = new Array(a.length);
    for (let width = 1; width < src.length; width *= 2) {
      for (let lo = 0; lo < src.length; lo += 2 * width) {
        const mid = Math.min(lo + width, src.length), hi = Math.min(lo + 2 * width, src.length);
        let i = lo, j = mid, k = lo;
        while (i < mid && j < hi) {
          if (src[j] < src[i]) { count += mid - i; dst[k++] = src[j++]; } else dst[k++] = src[i++];
        }
        while (i < mid) dst[k++] = src[i++];
        while (j < hi) dst[k++] = src[j++];
      }
      [src, dst] = [dst, src];
    }
    return count;
  }

  // weighted isotonic regression of x[i] - offset[i] (pool adjacent violators): the closest placement
  // to the targets that keeps each item at least gaps[i] right of the previous one
  function isotonic(target, weight, gaps) {
    const m = target.length, offset = new Float64Array(m);
    for (let i = 1; i < m; i++) offset[i] = offset[i - 1] + gaps[i];
    const val = [], wt = [], len = [];
    for (let i = 0; i < m; i++) {
      let v = target[i] - offset[i], w = weight[i], c = 1;
      while (val.length && val[val.length - 1] > v) {
        const pv = val.pop(), pw = wt.pop(), pc = len.pop();
        v = (pv * pw + v * w) / (pw + w || 1);
        w += pw; c += pc;
      }
      val.push(v); wt.push(w); len.push(c);
    }
    const out = new Float64Array(m);
    let i = 0;
    val.forEach((v, b) => { for (let k = 0; k < len[b]; k++, i++) out[i] = v + offset[i]; });
    return out;
  }

  // ---- the view: which groups are expanded, the layout of what is visible ---------------------------
  const state = {
    phase: 0, models: new Map(), expanded: new Set(), kernelsOpen: new Set(), seen: new Set(),
    selected: null, matches: new Set(), markNew: true, view: { x: 20, y: 20, k: 1 }, layout: null,
    stats: {}, found: [],
  };
  const model = () => {
    let m = state.models.get(state.phase);
    if (!m) { m = buildModel(state.phase); state.models.set(state.phase, m); }
    return m;
  };
  const isOpen = (m, gid) => gid === "" || gid.startsWith("b:") ||  // a body is open when its node is
    (gid.startsWith("k:") ? state.kernelsOpen.has(m.index + "|" + gid) : state.expanded.has(gid));

  function defaultExpansion(m) {
    // open scopes breadth first while the drawing stays small (TensorBoard starts collapsed, too)
    let visible = m.groups.get("").children.length;
    const queue = m.groups.get("").children.filter((id) => id.startsWith("s:"));
    while (queue.length) {
      const g = m.groups.get(queue.shift());
      if (visible - 1 + g.children.length > DEFAULT_VISIBLE) continue;
      state.expanded.add(g.id);
      visible += g.children.length - 1;
      for (const c of g.children) if (c.startsWith("s:")) queue.push(c);
    }
  }

  function rep(m, key) {  // the visible item that stands for node ``key``
    const n = m.nodes.get(key);
    for (const gid of n.chain) if (!isOpen(m, gid)) return gid;
    return n.group || key;
  }

  function chainOf(m, id) {
    const g = m.groups.get(id);
    return (g ? g.chain : m.nodes.get(id).chain).concat([id]);
  }

  function visibleEdges(m) {
    const out = new Map();
    for (const e of m.edges) {
      if (e.kind === "r") continue;
      const dst = m.nodes.get(e.d);
      // the input edges of an open kernel or loop that parameter edges show
      if (e.kind === "i" && dst.group && isOpen(m, dst.group) && m.fed.has(e.s + ">" + e.d)) continue;
      let s = e.s;
      if (e.inner && isOpen(m, m.nodes.get(e.s).group)) s = e.inner;
      const a = rep(m, s), b = rep(m, e.d);
      if (a === b) continue;
      const id = a + ">" + b;
      let v = out.get(id);
      if (!v) { v = { a: a, b: b, labels: [], param: true, count: 0, edges: [] }; out.set(id, v); }
      v.param = v.param && e.kind === "p";
      if (e.label && (e.kind !== "p" || b === e.d) && v.labels.length < 3) v.labels.push(e.label);
      v.count += 1;
      v.edges.push(e);
    }
    const result = [];
    for (const v of out.values()) {
      const ca = chainOf(m, v.a), cb = chainOf(m, v.b);
      let i = 0;
      while (i < ca.length && i < cb.length && ca[i] === cb[i]) i++;
      if (i === ca.length || i === cb.length) continue;  // one is inside the other's frame
      v.level = i === 0 ? "" : ca[i - 1];
      v.ia = ca[i]; v.ib = cb[i];
      result.push(v);
    }
    return result;
  }

  function itemSize(m, id) {
    const g = m.groups.get(id);
    if (!g) {
      const n = m.nodes.get(id);
      const title = n.op === leaf(n.name) || n.kernel ? n.op : n.op + "  " + leaf(n.name);
      n.lines = [clip(title, 11, MAX_LABEL, true), clip(n.type, 9.5, MAX_LABEL, false)];
      const w = Math.max(textWidth(n.lines[0], 11, true), textWidth(n.lines[1], 9.5, false)) + 16;
      return { w: Math.max(48, w), h: NODE_H };
    }
    if (g.kind === "kernel") {
      const n = m.nodes.get(g.node);
      g.lines = [clip(g.label, 11, MAX_LABEL, true), `${n.kind} kernel · ${g.ops} ops`, clip(n.type, 9.5, MAX_LABEL)];
    } else if (g.kind === "control") {
      const n = m.nodes.get(g.node);
      const bodies = g.bodies.map((b) => `${b.heading} ${opCount(m.groups.get(b.group).ops)}`).join(", ");
      g.lines = [clip(g.label, 11, MAX_LABEL, true), clip(`${n.op} · ${bodies}`, 9.5, MAX_LABEL),
                 clip(n.type, 9.5, MAX_LABEL)];
    } else if (g.kind === "body") {
      g.lines = [clip(g.label, 11, MAX_LABEL, true), opCount(g.ops)];
    } else {
      g.lines = [clip(g.label, 11, MAX_LABEL, true), `${g.count} node${g.count === 1 ? "" : "s"}`];
    }
    const w = Math.max(...g.lines.map((t, i) => textWidth(t, i ? 9.5 : 11, !i))) + 40;
    return { w: Math.max(70, w), h: g.lines.length > 2 ? BOX_H + 10 : BOX_H };
  }

  function frameTitle(m, g) {
    if (g.kind === "kernel") return `${g.label} (${m.nodes.get(g.node).kind} kernel)`;
    if (g.kind === "control") return `${g.label} (${m.nodes.get(g.node).op})`;
    return g.label;
  }

  function computeLayout() {
    const m = model();
    const t0 = performance.now();
    const edges = visibleEdges(m);
    const byLevel = new Map();
    for (const e of edges) {
      if (!byLevel.has(e.level)) byLevel.set(e.level, []);
      byLevel.get(e.level).push(e);
    }
    const boxes = new Map();   // item id -> {x, y, w, h} relative to its group's content origin
    function layoutGroup(gid) {
      const g = m.groups.get(gid);
      const ids = g.children;
      const index = new Map(ids.map((id, i) => [id, i]));
      const items = ids.map((id) => {
        const sub = m.groups.get(id);
        if (sub && isOpen(m, id) && sub.children.length) {
          const size = layoutGroup(id);
          return { id: id, w: size.w + 2 * PAD, h: size.h + 2 * PAD + HEAD, order: m.itemOrder(id), open: true };
        }
        const s = itemSize(m, id);
        return { id: id, w: s.w, h: s.h, order: m.itemOrder(id), open: false };
      });
      const links = [], owners = [];
      const pairs = new Map();
      for (const e of byLevel.get(gid) || []) {
        const k = e.ia + ">" + e.ib;
        if (!pairs.has(k)) { pairs.set(k, links.length); links.push([index.get(e.ia), index.get(e.ib)]); }
        owners.push([e, pairs.get(k)]);
      }
      const lay = layered(items, links);
      items.forEach((it, i) => {
        boxes.set(it.id, { x: lay.cx[i] - it.w / 2, y: lay.ty[i], w: it.w, h: it.h, open: it.open });
      });
      for (const [e, k] of owners) e.route = lay.routes[k];
      return { w: Math.max(lay.w, gid === "" ? 0 : textWidth(frameTitle(m, g), 11, true) + 36), h: lay.h };
    }
    const size = layoutGroup("");
    // absolute positions, outermost first
    const abs = new Map();
    function place(gid, ox, oy) {
      for (const id of m.groups.get(gid).children) {
        const b = boxes.get(id);
        const a = { x: ox + b.x, y: oy + b.y, w: b.w, h: b.h, open: b.open };
        abs.set(id, a);
        if (b.open) place(id, a.x + PAD, a.y + PAD + HEAD);
      }
    }
    place("", 0, 0);
    const origin = (gid) => { if (gid === "") return [0, 0]; const a = abs.get(gid); return [a.x + PAD, a.y + PAD + HEAD]; };
    for (const e of edges) {
      const [ox, oy] = origin(e.level);
      const pts = e.route.pts.map(([px, py]) => [px + ox, py + oy]);
      const a = abs.get(e.a), b = abs.get(e.b);
      pts[0] = [a.x + a.w / 2, e.route.back ? a.y : a.y + a.h];
      pts[pts.length - 1] = [b.x + b.w / 2, e.route.back ? b.y + b.h : b.y];
      e.pts = pts;
    }
    const ms = performance.now() - t0;
    return { model: m, abs: abs, edges: edges, w: size.w, h: size.h, ms: ms };
  }

  // ---- drawing ------------------------------------------------------------------------------------
  function pathOf(pts) {
    let d = `M${pts[0][0].toFixed(1)},${pts[0][1].toFixed(1)}`;
    for (let i = 1; i < pts.length; i++) {
      const [x0, y0] = pts[i - 1], [x1, y1] = pts[i];
      const dy = (y1 - y0) / 2;
      d += `C${x0.toFixed(1)},${(y0 + dy).toFixed(1)} ${x1.toFixed(1)},${(y1 - dy).toFixed(1)} ` +
           `${x1.toFixed(1)},${y1.toFixed(1)}`;
    }
    return d;
  }

  function toggleButton(x, y, open) {
    return `<g class="toggle" transform="translate(${x},${y})"><rect width="14" height="14" rx="3"/>` +
           `<text x="7" y="11" text-anchor="middle">${open ? "−" : "+"}</text></g>`;
  }

  function newNames(m) {
    if (m.index === 0) return new Set();
    const prev = state.models.get(m.index - 1) || buildModel(m.index - 1);
    state.models.set(m.index - 1, prev);
    const fresh = new Set();
    for (const n of m.nodes.values()) if (!prev.names.has(n.name)) fresh.add(n.key);
    return fresh;
  }

  function render() {
    const lay = state.layout = computeLayout();
    const m = lay.model;
    const t0 = performance.now();
    const fresh = state.markNew ? newNames(m) : new Set();
    m.fresh = fresh;
    const frames = [], boxes = [], nodes = [], edges = [];
    for (const [id, a] of lay.abs) {
      const g = m.groups.get(id);
      if (g) {
        const cls = `group ${g.kind}${a.open ? " expanded" : " collapsed"}` +
                    (state.selected === id || state.selected === g.node ? " sel" : "") + (groupHasFresh(m, g, fresh) && !a.open ? " new" : "") +
                    (state.matches.has(id) ? " match" : "");
        if (a.open) {
          frames.push(`<g class="${cls}" data-group="${esc(id)}"><rect class="frame" x="${a.x}" y="${a.y}" ` +
            `width="${a.w}" height="${a.h}" rx="6"/><text class="head" x="${a.x + 8}" y="${a.y + 15}">` +
            `${esc(frameTitle(m, g))}</text>` +
            (g.kind === "body" ? "" : toggleButton(a.x + a.w - 20, a.y + 4, true)) + "</g>");
        } else {
          const lines = g.lines.map((t, i) => `<text${i ? ' class="sub"' : ' class="head"'} x="${a.x + 10}" ` +
            `y="${a.y + 15 + i * 13}">${esc(t)}</text>`).join("");
          boxes.push(`<g class="${cls}" data-group="${esc(id)}"><rect class="shadow" x="${a.x + 3}" y="${a.y + 3}" ` +
            `width="${a.w}" height="${a.h}" rx="6"/><rect class="box" x="${a.x}" y="${a.y}" width="${a.w}" ` +
            `height="${a.h}" rx="6"/>${lines}` + (g.children.length ? toggleButton(a.x + a.w - 20, a.y + 4, false) : "") +
            "</g>");
        }
        continue;
      }
      const n = m.nodes.get(id);
      const fill = FILL[n.op] || FAMILY_FILL[n.family] || "#ffffff";
      const cls = "node" + (n.out ? " out" : "") + (fresh.has(id) ? " new" : "") +
                  (state.selected === id ? " sel" : "") + (state.matches.has(id) ? " match" : "");
      nodes.push(`<g class="${cls}" data-key="${esc(id)}"><title>${esc(n.name)}</title>` +
        `<rect x="${a.x}" y="${a.y}" width="${a.w}" height="${a.h}" rx="5" fill="${fill}"/>` +
        `<text x="${a.x + 8}" y="${a.y + 14}">${esc(n.lines[0])}</text>` +
        `<text class="sub" x="${a.x + 8}" y="${a.y + 27}">${esc(n.lines[1])}</text></g>`);
    }
    const selected = state.selected;
    for (const e of lay.edges) {
      const sel = selected !== null && (e.a === selected || e.b === selected);
      const cls = "edge" + (e.param ? " param" : "") + (e.route.back ? " back" : "") + (sel ? " sel" : "");
      edges.push(`<path class="${cls}" data-from="${esc(e.a)}" data-to="${esc(e.b)}" d="${pathOf(e.pts)}" ` +
                 `marker-end="url(#arrow)"/>`);
      if (e.labels.length) {
        const [lx, ly] = e.pts[e.pts.length - 1];
        edges.push(`<text class="elabel" x="${lx + 3}" y="${ly - 4}">${esc(e.labels.join(" "))}</text>`);
      }
    }
    byId("scene").innerHTML = frames.join("") + edges.join("") + boxes.join("") + nodes.join("");
    applyView();
    const renderMs = performance.now() - t0;
    state.stats = { phase: m.phase.name, layoutMs: lay.ms, renderMs: renderMs, nodes: nodes.length,
                    boxes: boxes.length, frames: frames.length, edges: lay.edges.length, width: lay.w,
                    height: lay.h, modelNodes: m.nodes.size };
    byId("status").textContent = `${m.phase.nodes.filter((n) => !n[2]).length} nodes in this phase · showing ${nodes.length} nodes, ` +
      `${boxes.length} collapsed boxes, ${lay.edges.length} edges · layout ${lay.ms.toFixed(0)} ms, ` +
      `drawing ${renderMs.toFixed(0)} ms`;
  }

  function groupHasFresh(m, g, fresh) {
    if (!fresh.size) return false;
    for (const key of fresh) if (m.nodes.get(key).chain.includes(g.id) || m.nodes.get(key).group === g.id) return true;
    return false;
  }

  // ---- zoom and pan ----------------------------------------------------------------------------------
  // A zoom is first shown by scaling the drawing as a picture (a CSS transform the compositor applies
  // without drawing anything again), and drawn at its new scale once the wheel has rested ZOOM_SETTLE_MS:
  // rasterising every label at every intermediate size is what would make zooming stutter.
  let committed = { x: 0, y: 0, k: 1 }, settle = 0;
  function applyView() {
    clearTimeout(settle);
    const v = state.view;
    byId("scene").setAttribute("transform", `translate(${v.x.toFixed(2)},${v.y.toFixed(2)}) scale(${v.k.toFixed(4)})`);
    byId("graph").style.transform = "";
    byId("graph").classList.toggle("far", v.k < FAR_SCALE);  // text too small to read is not drawn
    committed = { x: v.x, y: v.y, k: v.k };
  }
  function previewView() {
    const v = state.view, s = v.k / committed.k;
    byId("graph").style.transform = `translate(${(v.x - committed.x * s).toFixed(2)}px,` +
                                    `${(v.y - committed.y * s).toFixed(2)}px) scale(${s.toFixed(5)})`;
    clearTimeout(settle);
    settle = setTimeout(applyView, ZOOM_SETTLE_MS);
  }
  function fit() {  // the whole graph if it is legible so, else its top at a readable scale
    const box = byId("canvas").getBoundingClientRect(), lay = state.layout, v = state.view;
    const k = Math.min(1.2, (box.width - 40) / Math.max(lay.w, 1), (box.height - 40) / Math.max(lay.h, 1));
    v.k = k >= MIN_FIT_SCALE ? k : Math.min(0.8, (box.width - 40) / Math.max(lay.w, 1));
    v.k = Math.max(v.k, MIN_FIT_SCALE);
    v.x = lay.w * v.k <= box.width ? (box.width - lay.w * v.k) / 2 : box.width / 2 - (lay.w / 2) * v.k;
    v.y = 20;
    applyView();
  }
  function zoomAt(factor, px, py) {
    const v = state.view, k = Math.min(4, Math.max(0.03, v.k * factor));
    v.x = px - (px - v.x) * (k / v.k);
    v.y = py - (py - v.y) * (k / v.k);
    v.k = k;
    previewView();
  }
  function centreOn(id) {
    const a = state.layout.abs.get(id);
    if (!a) return;
    const box = byId("canvas").getBoundingClientRect(), v = state.view;
    if (v.k < 0.6) v.k = 0.9;
    v.x = box.width / 2 - (a.x + a.w / 2) * v.k;
    v.y = box.height / 2 - (a.y + a.h / 2) * v.k;
    applyView();
  }

  // ---- actions --------------------------------------------------------------------------------------
  function keepInPlace(id, change) {  // change the layout, keeping item ``id`` where it is on screen
    const before = state.layout && state.layout.abs.get(id);
    change();
    render();
    const after = state.layout.abs.get(id);
    if (before && after) {
      state.view.x += (before.x - after.x) * state.view.k;
      state.view.y += (before.y - after.y) * state.view.k;
      applyView();
    }
  }
  function toggle(gid) {
    const m = model();
    keepInPlace(gid, () => {
      const set = gid.startsWith("k:") ? state.kernelsOpen : state.expanded;
      const id = gid.startsWith("k:") ? m.index + "|" + gid : gid;
      if (set.has(id)) set.delete(id); else set.add(id);
    });
  }
  function setAll(open) {
    const m = model();
    state.expanded.clear();
    for (const key of [...state.kernelsOpen]) if (key.startsWith(m.index + "|")) state.kernelsOpen.delete(key);
    if (open) {
      for (const gid of m.groups.keys()) {
        if (gid.startsWith("s:")) state.expanded.add(gid);
        else if (gid.startsWith("k:")) state.kernelsOpen.add(m.index + "|" + gid);
      }
    }
    render();
    fit();
  }
  function reveal(key) {  // open every group around node ``key``, select it and bring it into view
    const m = model();
    const n = m.nodes.get(key);
    if (!n) return;
    for (const gid of n.chain) {
      if (gid.startsWith("k:")) state.kernelsOpen.add(m.index + "|" + gid);
      else if (gid.startsWith("s:")) state.expanded.add(gid);
    }
    state.selected = key;
    render();
    centreOn(n.group || key);
    showDetails();
  }
  function select(id) {
    state.selected = id;
    render();
    showDetails();
  }
  function showPhase(i) {
    if (i < 0 || i >= D.phases.length) return;
    state.phase = i;
    state.selected = null;
    const m = model();
    if (!state.seen.has(i) && state.seen.size === 0) defaultExpansion(m);
    state.seen.add(i);
    updateMatches();
    render();
    fit();
    document.querySelectorAll("#phases button[data-phase]").forEach((b) => {
      b.classList.toggle("current", Number(b.dataset.phase) === i);
    });
    byId("dprint").textContent = D.phases[i].dprint;
    byId("dprint-phase").textContent = D.phases[i].name;
    showDetails();
  }

  // ---- side panel: node details and the phase's rewrites -------------------------------------------
  const link = (key, text) => `<a data-goto="${esc(key)}">${esc(text)}</a>`;
  function rewriteLine(i) {
    const r = D.rewrites[i];
    const made = r.result && r.result !== r.node ? ` → '${esc(r.result)}'` : "";
    return `<b>${esc(r.rewrite)}</b> <span class="hint">(${esc(r.phase)})</span>: ${esc(r.op)} '${esc(r.node)}'${made}` +
           (r.loc ? ` <span class="hint">at ${esc(r.loc)}</span>` : "");
  }
  function showDetails() {
    const m = model();
    const id = state.selected;
    let html = "";
    if (id !== null && m.nodes.has(id)) {
      const n = m.nodes.get(id);
      const phaseNames = D.phases.slice(0, m.index + 1).map((p) => p.name);
      const ran = new Set(D.phases.slice(0, m.index + 1).flatMap((p) => p.rewrites));
      // a kernel's body was made with the kernel
      const owner = n.body === "kernel" ? m.nodes.get(n.kernel).name : null;
      const within = n.kernel && n.body !== "kernel" ? m.groups.get(n.parent) : null;  // the body holding it
      const made = [...new Set([...(D.made_by[n.name] || []), ...(owner ? D.made_by[owner] || [] : [])])]
        .filter((i) => ran.has(i));
      html += `<h2>%${esc(n.key)} ${esc(n.op)}</h2><dl>` +
        `<dt>name</dt><dd>${esc(n.name)}</dd><dt>op</dt><dd>${esc(n.op)} <span class="hint">(${esc(n.family)})</span></dd>` +
        `<dt>type</dt><dd><code>${esc(n.type)}</code></dd>` +
        (n.attrs ? `<dt>attributes</dt><dd><code>${esc(n.attrs)}</code></dd>` : "") +
        `<dt>created at</dt><dd>${n.loc ? esc(n.loc) : '<span class="hint">unknown</span>'}</dd>` +
        (n.out ? `<dt>output</dt><dd>${within ? "of its " + esc(within.label) : n.kernel ? "of its kernel"
                                                                                     : "of the graph"}</dd>` : "") +
        (owner ? `<dt>kernel</dt><dd>${link(n.kernel, "%" + n.kernel)}</dd>` : "") +
        (within ? `<dt>in</dt><dd>the ${esc(within.label)} of ${link(n.kernel, "%" + n.kernel + " " +
                  m.nodes.get(n.kernel).op)}</dd>` : "") +
        (n.kind ? `<dt>kernel</dt><dd>${esc(n.kind)}, ${m.groups.get(n.group).ops} ops ` +
                  `(<a data-toggle="${esc(n.group)}">${isOpen(m, n.group) ? "collapse" : "expand"}</a>)</dd>` : "") +
        (n.group && m.groups.get(n.group).kind === "control" ? "<dt>bodies</dt><dd>" + m.groups.get(n.group).bodies
          .map((b) => `${esc(b.heading)} (${opCount(m.groups.get(b.group).ops)})`).join(", ") +
          ` (<a data-toggle="${esc(n.group)}">${isOpen(m, n.group) ? "collapse" : "expand"}</a>)</dd>` : "") +
        (m.fresh && m.fresh.has(id) ? `<dt>new</dt><dd>not in the previous phase (${esc(phaseNames[m.index - 1])})</dd>` : "") +
        "</dl>";
      const standsFor = m.edges.filter((e) => e.kind === "p" && e.d === id);
      const reads = (e) => (e.label ? `${esc(e.label)}: the input of %${esc(n.kernel)} it reads`
                                    : "the kernel's input it reads");
      if (standsFor.length) html += `<h2>Stands for</h2><ul>` + standsFor.map((e) => `<li>${link(e.s, "%" + e.s + " " +
        m.nodes.get(e.s).name)} <span class="hint">(${reads(e)})</span></li>`).join("") + "</ul>";
      html += `<h2>Inputs</h2>` + (n.inputs.length ? "<ul>" + n.inputs.map((k) => `<li>${link(k, "%" + k + " " +
        m.nodes.get(k).name)}</li>`).join("") + "</ul>" : '<p class="hint">none</p>');
      html += `<h2>Used by</h2>` + (n.users.length ? "<ul>" + n.users.map((k) => `<li>${link(k, "%" + k + " " +
        m.nodes.get(k).name)}</li>`).join("") + "</ul>" : '<p class="hint">none</p>');
      html += `<h2>Made by rewrites</h2>` + (made.length ? "<ul>" + made.map((i) => `<li>${rewriteLine(i)}</li>`).join("") +
        "</ul>" : '<p class="hint">none: built as written</p>');
    } else if (id !== null && m.groups.has(id)) {
      const g = m.groups.get(id);
      const ops = new Map();
      for (const n of m.nodes.values()) if (n.chain.includes(id)) ops.set(n.op, (ops.get(n.op) || 0) + 1);
      const toggleLink = `<a data-toggle="${esc(id)}">${isOpen(m, id) ? "collapse" : "expand"}</a>`;
      if (g.kind === "body") {
        const n = m.nodes.get(g.owner);
        html += `<h2>${esc(g.label)} of ${link(g.owner, "%" + g.owner + " " + n.op)} ${esc(n.name)}</h2>` +
          `<p><code>${esc(g.text)}</code></p><p>${opCount(g.ops)}</p>`;
      } else if (g.kind === "control") {
        html += `<h2>${esc(m.nodes.get(g.node).op)} ${link(g.node, g.label)}</h2><p>` +
          g.bodies.map((b) => `${esc(b.heading)}: ${opCount(m.groups.get(b.group).ops)}`).join(", ") +
          ` · ${toggleLink}</p>`;
      } else {
        const kernel = g.kind === "kernel";
        html += `<h2>${kernel ? "kernel" : "name scope"} ${esc(kernel ? g.label : g.path)}</h2>` +
          `<p>${kernel ? g.ops + " ops" : g.count + " nodes"} · ${toggleLink}</p>`;
      }
      html += "<ul>" + [...ops].sort((a, b) => b[1] - a[1]).map(([op, c]) => `<li>${esc(op)} × ${c}</li>`).join("") +
        "</ul>";
    } else {
      html += '<p class="hint">Click a node for its details, a box\'s + to open it. Drag to pan, wheel to zoom.</p>';
    }
    const rw = m.phase.rewrites;
    html += `<h2>Rewrites in phase ${esc(m.phase.name)} (${rw.length})</h2>`;
    if (m.fresh && m.index > 0) html += `<p class="hint">${m.fresh.size} nodes new in this phase (outlined).</p>`;
    html += rw.length ? "<ul>" + rw.map((i) => `<li><a data-rewrite="${i}">${rewriteLine(i)}</a></li>`).join("") + "</ul>"
                      : '<p class="hint">none</p>';
    byId("details").innerHTML = html;
  }

  // ---- search -------------------------------------------------------------------------------------
  function updateMatches() {
    const q = byId("search").value.trim().toLowerCase();
    state.matches = new Set();
    const found = [];
    if (q) {
      const m = model();
      for (const n of m.nodes.values()) {
        if (n.name.toLowerCase().includes(q) || n.op === q) {
          found.push(n.key);
          state.matches.add(rep(m, n.key));
        }
      }
      byId("results").innerHTML = `${found.length} match${found.length === 1 ? "" : "es"}: ` +
        found.slice(0, MAX_RESULTS).map((k) => link(k, m.nodes.get(k).name)).join(", ") +
        (found.length > MAX_RESULTS ? " …" : "");
    } else {
      byId("results").textContent = "";
    }
    state.found = found;
  }

  // ---- wiring -------------------------------------------------------------------------------------
  function init() {
    const bar = byId("phases");
    bar.innerHTML = `<button id="prev" title="previous phase (←)">◀</button>` +
      D.phases.map((p, i) => `<button data-phase="${i}" title="the graph after ${esc(p.name)}">${esc(p.name)} ` +
                            `<span>${p.nodes.filter((n) => !n[2]).length}</span></button>`).join("") +
      `<button id="next" title="next phase (→)">▶</button>`;
    bar.addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      if (b.id === "prev") showPhase(state.phase - 1);
      else if (b.id === "next") showPhase(state.phase + 1);
      else showPhase(Number(b.dataset.phase));
    });
    byId("fit").onclick = fit;
    byId("zoom-in").onclick = () => { const r = byId("canvas").getBoundingClientRect(); zoomAt(1.25, r.width / 2, r.height / 2); };
    byId("zoom-out").onclick = () => { const r = byId("canvas").getBoundingClientRect(); zoomAt(0.8, r.width / 2, r.height / 2); };
    byId("expand-all").onclick = () => setAll(true);
    byId("collapse-all").onclick = () => setAll(false);
    byId("mark-new").onchange = (ev) => { state.markNew = ev.target.checked; render(); showDetails(); };
    byId("search").addEventListener("input", () => { updateMatches(); render(); });
    byId("search").addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" || !state.found.length) return;
      state.searchAt = ((state.searchAt === undefined ? -1 : state.searchAt) + 1) % state.found.length;
      reveal(state.found[state.searchAt]);
      updateMatches(); render();
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.target.tagName === "INPUT") return;
      if (ev.key === "ArrowLeft") showPhase(state.phase - 1);
      if (ev.key === "ArrowRight") showPhase(state.phase + 1);
    });
    const onLink = (ev) => {
      const a = ev.target.closest("a");
      if (!a) return;
      if (a.dataset.goto !== undefined) reveal(a.dataset.goto);
      else if (a.dataset.toggle !== undefined) { toggle(a.dataset.toggle); showDetails(); }
      else if (a.dataset.rewrite !== undefined) showRewrite(Number(a.dataset.rewrite));
    };
    byId("details").addEventListener("click", onLink);
    byId("results").addEventListener("click", onLink);
    // the canvas: click selects or toggles, drag pans, wheel zooms
    const canvas = byId("canvas");
    let drag = null;
    canvas.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, moved: false }; });
    window.addEventListener("mousemove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      drag.moved = true;
      canvas.classList.add("panning");
      state.view.x += dx; state.view.y += dy;
      drag.x = ev.clientX; drag.y = ev.clientY;
      applyView();
    });
    window.addEventListener("mouseup", () => { canvas.classList.remove("panning"); setTimeout(() => { drag = null; }, 0); });
    canvas.addEventListener("click", (ev) => {
      if (drag && drag.moved) return;
      const t = ev.target.closest(".toggle");
      const g = ev.target.closest("[data-group]");
      const n = ev.target.closest("[data-key]");
      if (t && g) toggle(g.dataset.group);
      else if (n) select(n.dataset.key);
      else if (g) select(g.dataset.group);
      else select(null);
    });
    canvas.addEventListener("dblclick", (ev) => {
      const g = ev.target.closest("[data-group]");
      if (g && !ev.target.closest(".toggle")) toggle(g.dataset.group);
    });
    canvas.addEventListener("wheel", (ev) => {  // the wheel zooms at the pointer; shift + wheel pans sideways
      ev.preventDefault();
      const r = canvas.getBoundingClientRect();
      const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
      if (ev.shiftKey) { state.view.x -= delta || ev.deltaX; applyView(); }
      else zoomAt(Math.exp(-delta * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    window.addEventListener("resize", () => applyView());
    showPhase(0);
  }

  function showRewrite(i) {
    const m = model(), r = D.rewrites[i];
    const keys = (r.created.length ? r.created : [r.result]).map((name) => m.names.get(name)).filter((k) => k !== undefined);
    if (!keys.length) return;
    reveal(keys[0]);
  }

  window.graphcReport = {
    data: D,
    get stats() { return state.stats; },
    get phase() { return state.phase; },
    showPhase: showPhase, toggle: toggle, reveal: reveal, select: select, fit: fit, centre: centreOn,
    expandAll: () => setAll(true), collapseAll: () => setAll(false),
    layout: () => state.layout,
  };
  init();
})();
