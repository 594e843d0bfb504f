/** The report's stylesheet: one self-contained page, no fonts or files fetched. */
export const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px auto;max-width:1280px;padding:0 16px;color:#222}
h1{font-size:21px;margin:0 0 2px}h2{font-size:17px;margin:20px 0 6px;border-bottom:1px solid #ddd;padding-bottom:3px}
.meta{color:#666;margin:0 0 8px;font-size:12px;overflow-wrap:anywhere}.diverged{color:#a33}.note{color:#666;font-size:12px}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}th{background:#f5f5f5;font-weight:600}
td:first-child,th:first-child{text-align:left}
table.runs td:nth-child(-n+4),table.runs th:nth-child(-n+4){text-align:left}
table.small{font-size:12px}caption{text-align:left;font-weight:600;padding:4px 0}
table.claims td.claim{text-align:left;min-width:360px;max-width:480px}table.claims{font-size:13px}table.claims td:nth-child(n+2):nth-child(-n+5){white-space:nowrap}
.formula,.source{color:#666;font-size:11px}
td.verdict{text-align:left;font-weight:600;max-width:240px}td.holds{background:#e3f4e1;color:#1d5e1a}td.fails{background:#fbe3e1;color:#8a1c13}td.open{background:#fff6d9;color:#6b5200}
td.verdict .formula{font-weight:400}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;border:1px solid #eee;border-radius:4px;padding:4px}figcaption{font-size:12px;color:#555;padding:2px 6px}
svg.chart{display:block}
details{margin:16px 0}summary{cursor:pointer;font-weight:600}
`;
