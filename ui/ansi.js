// Turns a stream of terminal output into DOM nodes, keeping SGR colours.
//
// The output is only ever placed in text nodes, so a log cannot inject markup.
// Escape sequences may be split across chunks: the unfinished tail of one chunk
// is kept and parsed with the next.

const ESC = '\x1b';

export class AnsiRenderer {
  constructor() {
    this.reset();
    this.pending = '';
  }

  reset() {
    this.fg = null; // palette index (number) or 'rgb(...)' string
    this.bg = null;
    this.bold = false;
    this.dim = false;
    this.italic = false;
    this.underline = false;
  }

  // Returns a DocumentFragment for the given chunk of text.
  render(chunk) {
    const text = this.pending + chunk;
    this.pending = '';
    const out = document.createDocumentFragment();
    let i = 0;
    while (i < text.length) {
      const esc = text.indexOf(ESC, i);
      const end = esc === -1 ? text.length : esc;
      if (end > i) this.emit(out, text.slice(i, end));
      if (esc === -1) break;
      const next = this.skipSequence(text, esc);
      if (next === -1) {
        // Unfinished sequence at the end of the chunk; short enough to be real.
        if (text.length - esc < 64) {
          this.pending = text.slice(esc);
        }
        break;
      }
      i = next;
    }
    return out;
  }

  // Parses the escape sequence starting at `at`; returns the index after it,
  // or -1 when the text ends before the sequence does.
  skipSequence(text, at) {
    if (at + 1 >= text.length) return -1;
    const kind = text[at + 1];
    if (kind === '[') {
      let j = at + 2;
      while (j < text.length) {
        const c = text.charCodeAt(j);
        if (c >= 0x40 && c <= 0x7e) {
          if (text[j] === 'm') this.applySgr(text.slice(at + 2, j));
          return j + 1;
        }
        j++;
      }
      return -1;
    }
    if (kind === ']') {
      // Operating system command (window title, hyperlink): ends with BEL or ESC \.
      for (let j = at + 2; j < text.length; j++) {
        if (text[j] === '\x07') return j + 1;
        if (text[j] === ESC && j + 1 < text.length && text[j + 1] === '\\') return j + 2;
      }
      return -1;
    }
    return at + 2;
  }

  applySgr(params) {
    const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
    for (let k = 0; k < codes.length; k++) {
      const c = codes[k];
      if (c === 0) this.reset();
      else if (c === 1) this.bold = true;
      else if (c === 2) this.dim = true;
      else if (c === 3) this.italic = true;
      else if (c === 4) this.underline = true;
      else if (c === 22) this.bold = this.dim = false;
      else if (c === 23) this.italic = false;
      else if (c === 24) this.underline = false;
      else if (c >= 30 && c <= 37) this.fg = c - 30;
      else if (c >= 90 && c <= 97) this.fg = c - 90 + 8;
      else if (c === 39) this.fg = null;
      else if (c >= 40 && c <= 47) this.bg = c - 40;
      else if (c >= 100 && c <= 107) this.bg = c - 100 + 8;
      else if (c === 49) this.bg = null;
      else if (c === 38 || c === 48) {
        let colour = null;
        if (codes[k + 1] === 5 && k + 2 < codes.length) {
          colour = xterm256(codes[k + 2]);
          k += 2;
        } else if (codes[k + 1] === 2 && k + 4 < codes.length) {
          colour = rgb(codes[k + 2], codes[k + 3], codes[k + 4]);
          k += 4;
        } else {
          k = codes.length; // malformed: ignore the rest
        }
        if (colour !== null) {
          if (c === 38) this.fg = colour;
          else this.bg = colour;
        }
      }
    }
  }

  emit(out, text) {
    const plain =
      this.fg === null && this.bg === null && !this.bold && !this.dim && !this.italic && !this.underline;
    if (plain) {
      out.append(document.createTextNode(text));
      return;
    }
    const span = document.createElement('span');
    const classes = [];
    if (typeof this.fg === 'number') classes.push(`ansi-fg-${this.fg}`);
    else if (this.fg !== null) span.style.color = this.fg;
    if (typeof this.bg === 'number') classes.push(`ansi-bg-${this.bg}`);
    else if (this.bg !== null) span.style.backgroundColor = this.bg;
    if (this.bold) classes.push('ansi-bold');
    if (this.dim) classes.push('ansi-dim');
    if (this.italic) classes.push('ansi-italic');
    if (this.underline) classes.push('ansi-underline');
    if (classes.length) span.className = classes.join(' ');
    span.textContent = text;
    out.append(span);
  }
}

function clamp(n) {
  return Math.max(0, Math.min(255, Number.isFinite(n) ? n : 0));
}

function rgb(r, g, b) {
  return `rgb(${clamp(r)}, ${clamp(g)}, ${clamp(b)})`;
}

// The xterm 256-colour palette: 16 themed colours, a 6x6x6 cube, a grey ramp.
function xterm256(n) {
  if (!Number.isInteger(n) || n < 0 || n > 255) return null;
  if (n < 16) return n;
  if (n < 232) {
    const steps = [0, 95, 135, 175, 215, 255];
    const v = n - 16;
    return rgb(steps[Math.floor(v / 36)], steps[Math.floor(v / 6) % 6], steps[v % 6]);
  }
  const grey = 8 + (n - 232) * 10;
  return rgb(grey, grey, grey);
}
