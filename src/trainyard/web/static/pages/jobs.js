// Placeholder while the page is being written (issue 8); replaced by the page itself.
import { h, register } from '../core.js';

register('#/jobs', (main) => { main.append(h('h1', {}, 'jobs')); });
