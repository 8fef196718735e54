// Line charts drawn as SVG: axes with ticks, a legend, a title and a description for screen
// readers. A chart is made once and then given new points (chart.add), so a page that polls a
// running job grows its charts in place instead of re-creating them.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 560;
const HEIGHT = 300;
const MARGIN = { top: 16, right: 16, bottom: 44, left: 56 };
// Colours from the stylesheet's palette (each ≥ 3:1 against the panel); validation series are
// also dashed, so no series is told apart by colour alone.
const COLOURS = ['#0b57d0', '#b3261e', '#136c2e', '#8a5300', '#6a1b9a', '#00695c'];

let chartCount = 0;

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// About `count` round tick values covering [low, high] (1, 2 or 5 × a power of ten apart).
function niceTicks(low, high, count = 5) {
  if (low === high) {  // one value (or a flat series): a small range around it
    const pad = Math.abs(low) / 10 || 1;
    low -= pad;
    high += pad;
  }
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const ticks = [];
  for (let value = Math.floor(low / step) * step; value <= high + step * 1e-9; value += step) {
    ticks.push(Number(value.toFixed(10)));
  }
  if (ticks[ticks.length - 1] < high) ticks.push(Number((ticks[ticks.length - 1] + step).toFixed(10)));
  return ticks;
}

function tickLabel(value) {
  return Math.abs(value) >= 1000 || (value !== 0 && Math.abs(value) < 0.001) ? value.toExponential(1) : String(Number(value.toPrecision(4)));
}

// lineChart({title, description, xLabel, yLabel, series: [{key, label, dashed}], xMax}) →
// {element, add(x, values)}: `values` maps series keys to numbers; a missing or null
// value leaves that series without a point at x. The x axis spans at least 0..xMax, so a job's
// chart does not rescale at every epoch.
export function lineChart({ title, description, xLabel, yLabel, series, xMax = 1 }) {
  const id = `chart-${++chartCount}`;
  const figure = document.createElement('figure');
  figure.className = 'line-chart';
  figure.style.margin = '0';
  const root = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-title ${id}-desc`,
    'font-size': 13, 'font-family': 'system-ui, "DejaVu Sans", sans-serif',
  });
  const titleElement = svg('title', { id: `${id}-title` }, title);
  const desc = svg('desc', { id: `${id}-desc` }, description);
  const axes = svg('g', { class: 'axes', fill: '#4f5966' });
  const plot = svg('g', { class: 'plot' });
  root.append(titleElement, desc, axes, plot);

  const legend = document.createElement('ul');
  legend.className = 'chart-legend';
  legend.setAttribute('aria-hidden', 'true');  // the description names the series already
  legend.style.cssText = 'list-style:none; display:flex; flex-wrap:wrap; gap:.25rem 1rem; padding:0; margin:.4rem 0 0;';
  series.forEach(({ label, dashed }, index) => {
    const key = svg('svg', { width: 28, height: 14, 'aria-hidden': 'true' });
    const colour = COLOURS[index % COLOURS.length];
    key.append(
      svg('line', { x1: 0, y1: 7, x2: 28, y2: 7, stroke: colour, 'stroke-width': 3, 'stroke-dasharray': dashed ? '6 4' : 'none' }),
      svg('circle', { cx: 14, cy: 7, ...(dashed ? { r: 5, fill: '#ffffff', stroke: colour, 'stroke-width': 2 } : { r: 3.5, fill: colour }) }));
    const item = document.createElement('li');
    item.style.cssText = 'display:flex; align-items:center; gap:.35rem;';
    item.append(key, label);
    legend.append(item);
  });
  const caption = document.createElement('figcaption');
  caption.className = 'hint';
  caption.textContent = title;
  figure.append(caption, root, legend);

  const points = [];  // {x, values}

  function draw() {
    axes.replaceChildren();
    plot.replaceChildren();
    const xs = points.map((p) => p.x);
    const ys = points.flatMap((p) => series.map((s) => p.values[s.key])).filter((v) => typeof v === 'number' && Number.isFinite(v));
    const xTicks = niceTicks(Math.min(0, ...xs), Math.max(xMax, ...xs), 6).filter((v) => Number.isInteger(v) || xs.some((x) => !Number.isInteger(x)));
    const yTicks = ys.length ? niceTicks(Math.min(...ys), Math.max(...ys), 5) : [0, 0.5, 1];
    const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
    const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
    const left = MARGIN.left, right = WIDTH - MARGIN.right, top = MARGIN.top, bottom = HEIGHT - MARGIN.bottom;
    const sx = (x) => left + ((x - x0) / (x1 - x0 || 1)) * (right - left);
    const sy = (y) => bottom - ((y - y0) / (y1 - y0 || 1)) * (bottom - top);

    for (const value of yTicks) {
      axes.append(svg('line', { x1: left, x2: right, y1: sy(value), y2: sy(value), stroke: '#e3e7ec' }));
      axes.append(svg('text', { x: left - 6, y: sy(value) + 4, 'text-anchor': 'end' }, tickLabel(value)));
    }
    for (const value of xTicks) {
      axes.append(svg('line', { x1: sx(value), x2: sx(value), y1: bottom, y2: bottom + 5, stroke: '#4f5966' }));
      axes.append(svg('text', { x: sx(value), y: bottom + 19, 'text-anchor': 'middle' }, tickLabel(value)));
    }
    axes.append(svg('line', { x1: left, x2: right, y1: bottom, y2: bottom, stroke: '#4f5966' }));
    axes.append(svg('line', { x1: left, x2: left, y1: top, y2: bottom, stroke: '#4f5966' }));
    axes.append(svg('text', { x: (left + right) / 2, y: HEIGHT - 6, 'text-anchor': 'middle' }, xLabel));
    axes.append(svg('text', { x: 14, y: (top + bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${(top + bottom) / 2})` }, yLabel));

    series.forEach(({ key, dashed }, index) => {
      const colour = COLOURS[index % COLOURS.length];
      const own = points.filter((p) => typeof p.values[key] === 'number' && Number.isFinite(p.values[key]));
      if (!own.length) return;
      const group = svg('g', { class: 'series', 'data-series': key });
      group.append(svg('polyline', {
        points: own.map((p) => `${sx(p.x).toFixed(1)},${sy(p.values[key]).toFixed(1)}`).join(' '),
        fill: 'none', stroke: colour, 'stroke-width': 2.5, 'stroke-dasharray': dashed ? '6 4' : 'none',
      }));
      for (const p of own) {
        // a dashed series' points are rings, so a point hidden under another's still shows
        const look = dashed ? { r: 5.5, fill: 'none', stroke: colour, 'stroke-width': 2 } : { r: 3.5, fill: colour };
        group.append(svg('circle', { class: 'point', cx: sx(p.x).toFixed(1), cy: sy(p.values[key]).toFixed(1), ...look }));
      }
      plot.append(group);
    });

    const last = points[points.length - 1];
    desc.textContent = last
      ? `${description} ${xLabel} ${last.x}: ${series.filter((s) => typeof last.values[s.key] === 'number').map((s) => `${s.label} ${tickLabel(last.values[s.key])}`).join(', ')}.`
      : description;
  }

  draw();
  return {
    element: figure,
    // A point per x: adding an x the chart has replaces its values (a re-reported epoch).
    add(x, values) {
      const existing = points.find((p) => p.x === x);
      if (existing) existing.values = values;
      else points.push({ x, values });
      points.sort((a, b) => a.x - b.x);
      draw();
    },
  };
}
