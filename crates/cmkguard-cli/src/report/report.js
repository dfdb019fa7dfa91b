// cmkguard report: filter and sort the findings table in the page. No framework, nothing
// fetched; values are read from the document (escaped text and data- attributes) and written
// back only as text.
(() => {
  'use strict';
  const table = document.getElementById('findings');
  if (!table) return;
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const filters = ['account', 'region', 'reason', 'severity'].map((name) => [
    name,
    document.getElementById('filter-' + name),
  ]);
  const shown = document.getElementById('shown-count');

  function apply() {
    let visible = 0;
    for (const row of rows) {
      const keep = filters.every(([name, select]) => !select.value || row.dataset[name] === select.value);
      row.hidden = !keep;
      if (keep) visible += 1;
    }
    shown.textContent = String(visible);
  }
  for (const [, select] of filters) select.addEventListener('change', apply);
  document.getElementById('filter-clear').addEventListener('click', () => {
    for (const [, select] of filters) select.value = '';
    apply();
  });

  const headers = Array.from(table.tHead.rows[0].cells);
  const collator = new Intl.Collator(undefined, { numeric: true });
  headers.forEach((th, column) => {
    const button = th.querySelector('button');
    if (!button) return;
    button.addEventListener('click', () => {
      const ascending = th.getAttribute('aria-sort') !== 'ascending';
      for (const other of headers) other.setAttribute('aria-sort', 'none');
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      const key = (row) => row.cells[column].dataset.key ?? row.cells[column].textContent;
      rows.sort((a, b) => collator.compare(key(a), key(b)) * (ascending ? 1 : -1));
      body.append(...rows);
    });
  });
  apply();
})();
