// Pictures with something drawn on them: detection boxes, pose keypoints joined by their
// skeleton. Used by the dataset browser and the models' "try it" panel.
import { h } from './core.js';

const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#008080', '#9a6324', '#800000'];

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load the image ${src.startsWith('blob:') ? '' : src}`));
    image.src = src;
  });
}

// A canvas the size of `image` with the image and, over it:
// - boxes: [{box: [x1, y1, x2, y2] (pixels), label, score?}]
// - instances: [{points: [[x, y] | null, ...]}] with `edges`: [[i, j], ...] node index pairs
// `label` names the canvas for screen readers.
export function annotatedCanvas(image, { boxes = [], instances = [], edges = [], label = '' } = {}) {
  const canvas = h('canvas', { width: image.naturalWidth, height: image.naturalHeight, role: 'img', 'aria-label': label });
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  const stroke = Math.max(1, Math.round(Math.max(image.naturalWidth, image.naturalHeight) / 200));
  ctx.lineWidth = stroke;
  ctx.font = `${Math.max(10, stroke * 6)}px sans-serif`;
  boxes.forEach(({ box: [x1, y1, x2, y2], label: name, score }, i) => {
    const colour = PALETTE[i % PALETTE.length];
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = score === undefined ? name : `${name} ${(score * 100).toFixed(0)}%`;
    const width = ctx.measureText(text).width + 6;
    const height = Math.max(10, stroke * 6) + 4;
    ctx.fillStyle = colour;
    ctx.fillRect(x1, Math.max(0, y1 - height), width, height);
    ctx.fillStyle = '#fff';
    ctx.fillText(text, x1 + 3, Math.max(height - 4, y1 - 4));
  });
  instances.forEach(({ points }, i) => {
    const colour = PALETTE[i % PALETTE.length];
    ctx.strokeStyle = colour;
    for (const [a, b] of edges) {
      if (!points[a] || !points[b]) continue;
      ctx.beginPath();
      ctx.moveTo(...points[a]);
      ctx.lineTo(...points[b]);
      ctx.stroke();
    }
    ctx.fillStyle = colour;
    for (const point of points) {
      if (!point) continue;
      ctx.beginPath();
      ctx.arc(point[0], point[1], stroke * 2 + 1, 0, 2 * Math.PI);
      ctx.fill();
    }
  });
  return canvas;
}
