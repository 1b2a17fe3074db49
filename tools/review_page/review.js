(function () {
  var body = document.body;
  try {
    var names = JSON.parse(document.getElementById('names').textContent);
    var KEYS = ['score', 'cls_score', 'tiou', 'tnd', 'icd'];
    var TITLES = {positive: 'accepted: positive', mined: 'accepted: mined by MPP', oracle: 'accepted: oracle',
                  hand: 'accepted: hand-added', candidate: 'rejected: candidate', eap: 'rejected: removed by EAP',
                  duplicate: 'rejected: duplicate after relabel'};
    var LATER = {accepted: 'accepted: kept from the previous round', rejected: 'rejected: the previous round\'s'};
    var list = document.getElementById('videos');
    var sections = Array.prototype.slice.call(list.querySelectorAll('section.video'));
    var tip = document.getElementById('tip');

    function fmt(t) { return (Math.round(t * 1000) / 1000).toString(); }
    function describe(r) {
      var x = parseFloat(r.getAttribute('x')), w = parseFloat(r.getAttribute('width'));
      var s = r.getAttribute('data-s').split(' ');
      var lane = r.parentNode.getAttribute('class');
      var head = lane === 'truth' ? 'ground truth' : lane === 'previous' ? 'previous round: ' + r.getAttribute('data-p')
        : r.getAttribute('data-e') === 'previous_round' ? LATER[lane]
        : (TITLES[r.getAttribute('data-e')] || lane + ': ' + r.getAttribute('data-e'));
      var lines = [head + '  ' + names[+s[0]], fmt(x) + ' to ' + fmt(x + w) + ' s (' + w.toFixed(2) + ' s)'];
      if (s.length > 1) lines.push(KEYS.map(function (k, i) { return k + ' ' + s[i + 1]; }).join('  '));
      if (r.hasAttribute('data-c')) lines.push('class_scores: ' + r.getAttribute('data-c').split(' ').map(function (c) {
        var p = c.split(':'); return names[+p[0]] + ' ' + p[1]; }).join('  '));
      if (r.hasAttribute('data-w')) lines.push('relabelled (pseudo.relabel); the detector\'s class: ' +
                                               names[+r.getAttribute('data-w')]);
      if (r.hasAttribute('data-d')) lines.push('vs previous round: ' + r.getAttribute('data-d'));
      if (r.classList.contains('x')) lines.push(lane === 'truth' ? 'no pseudo label of its class at tIoU >= 0.5'
                                                                   : 'no ground truth of its class at tIoU >= 0.5');
      return lines.join('\n');
    }
    document.addEventListener('mouseover', function (ev) {
      var r = ev.target;
      if (r.tagName !== 'rect' || !r.hasAttribute('data-s')) { tip.hidden = true; return; }
      tip.textContent = describe(r);
      tip.hidden = false;
    });
    document.addEventListener('mousemove', function (ev) {
      if (tip.hidden) return;
      var left = Math.min(ev.pageX + 14, window.scrollX + document.documentElement.clientWidth - tip.offsetWidth - 4);
      tip.style.left = left + 'px';
      tip.style.top = (ev.pageY + 14) + 'px';
    });

    // Axis ticks about 90 px apart at the strip's current width.
    var STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    function tickLabel(t, dur, step) {
      if (dur < 120) return (step < 1 ? t.toFixed(1) : Math.round(t)) + ' s';
      var m = Math.floor(t / 60), sec = Math.round(t - 60 * m);
      return m + ':' + (sec < 10 ? '0' : '') + sec;
    }
    function drawAxis(axis) {
      var dur = parseFloat(axis.getAttribute('data-dur')), px = axis.clientWidth;
      if (!px) return false;
      var target = dur * 90 / px, step = STEPS[STEPS.length - 1];
      for (var i = 0; i < STEPS.length; i++) if (STEPS[i] >= target) { step = STEPS[i]; break; }
      axis.textContent = '';
      for (var k = 0; k * step <= dur + 1e-9; k++) {
        var span = document.createElement('span');
        span.style.left = (100 * k * step / dur) + '%';
        span.textContent = tickLabel(k * step, dur, step);
        axis.appendChild(span);
      }
      return true;
    }
    function drawAxes() {
      var n = 0;
      sections.forEach(function (s) { if (!s.hidden && drawAxis(s.querySelector('.axis'))) n++; });
      return n;
    }
    function zoom(section, factor) {
      var inner = section.querySelector('.inner');
      var now = parseFloat(inner.getAttribute('data-zoom') || '1');
      var z = factor === 0 ? 1 : Math.max(1, Math.min(256, now * factor));
      inner.setAttribute('data-zoom', z);
      inner.style.width = (100 * z) + '%';
      drawAxis(section.querySelector('.axis'));
    }
    document.addEventListener('click', function (ev) {
      var b = ev.target;
      if (b.hasAttribute('data-zoom')) zoom(b.closest('section'), parseFloat(b.getAttribute('data-zoom')));
      if (b.hasAttribute('data-zoom-all')) sections.forEach(function (s) {
        if (!s.hidden) zoom(s, parseFloat(b.getAttribute('data-zoom-all')));
      });
    });

    // Sorting and filtering by the values each section carries.
    function num(s, key) { var v = s.getAttribute('data-' + key); return v === null || v === '' ? NaN : +v; }
    function el(id) { return document.getElementById(id); }
    function apply() {
      var how = el('sort').value.split('-'), key = how[0], sign = how[1] === 'asc' ? 1 : -1;
      sections.sort(function (a, b) {
        if (key === 'vid') return a.getAttribute('data-vid') < b.getAttribute('data-vid') ? -1 : 1;
        var x = num(a, key), y = num(b, key);
        if (isNaN(x) !== isNaN(y)) return isNaN(x) ? 1 : -1;   // videos without the value last
        return (x === y || isNaN(x)) ? (a.getAttribute('data-vid') < b.getAttribute('data-vid') ? -1 : 1)
                                     : sign * (x - y);
      });
      var minN = +el('min-n').value || 0, find = el('find').value.trim(), shown = 0;
      var onlyDis = el('only-dis') && el('only-dis').checked;
      var onlyChanged = el('only-changed') && el('only-changed').checked;
      sections.forEach(function (s) {
        list.appendChild(s);
        s.hidden = num(s, 'n') < minN || (find && s.getAttribute('data-vid').indexOf(find) < 0) ||
                   (onlyDis && !(num(s, 'dis') > 0)) || (onlyChanged && !(num(s, 'changes') > 0));
        if (!s.hidden) shown++;
      });
      body.classList.toggle('dim-ok', !!(el('dim-ok') && el('dim-ok').checked));
      body.classList.toggle('dim-same', !!(el('dim-same') && el('dim-same').checked));
      el('shown').textContent = shown + ' of ' + sections.length + ' videos shown';
      return drawAxes();
    }
    el('controls').addEventListener('input', apply);
    el('controls').addEventListener('change', apply);
    window.addEventListener('resize', drawAxes);
    var drawn = apply();
    body.setAttribute('data-rendered', drawn + ' timelines');
  } catch (err) {
    body.setAttribute('data-error', String(err && err.stack || err));
    var box = document.getElementById('error');
    box.textContent = 'the page script failed: ' + err;
    box.hidden = false;
  }
})();
