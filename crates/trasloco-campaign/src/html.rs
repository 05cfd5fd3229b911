//! Self-contained HTML pages (plan and report): no network needed to open them. Styles and
//! the small script that sorts and filters tables are inline; charts are inline SVG.

use std::fmt::Write;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1d2733;background:#fff}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}
.sub{color:#5a6878;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #d5dce4;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.4rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin-top:.5rem}
th,td{border-bottom:1px solid #e3e8ee;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f6f9;cursor:pointer;user-select:none;position:sticky;top:0}
th.num,td.num{text-align:right}
tr.migrate td:first-child{border-left:4px solid #2e8b57}
tr.migrate-archive td:first-child{border-left:4px solid #3b7dd8}
tr.skip td:first-child{border-left:4px solid #9aa5b1}
tr.blocked td:first-child,tr.failed td:first-child,tr.incomplete td:first-child{border-left:4px solid #c0392b}
input.filter{padding:.35rem .5rem;width:22rem;max-width:100%;border:1px solid #b8c2cc;border-radius:4px}
.muted{color:#5a6878}
svg text{font-size:11px;fill:#1d2733}
@media print{th{position:static}input.filter{display:none}}
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('table.sortable').forEach(function(t){
  var heads=t.querySelectorAll('th');
  heads.forEach(function(th,i){th.addEventListener('click',function(){
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    var asc=th.getAttribute('data-dir')!=='asc';
    heads.forEach(function(h){h.removeAttribute('data-dir')});
    th.setAttribute('data-dir',asc?'asc':'desc');
    rows.sort(function(a,b){
      var x=a.cells[i].getAttribute('data-v')||a.cells[i].textContent,
          y=b.cells[i].getAttribute('data-v')||b.cells[i].textContent;
      var nx=parseFloat(x),ny=parseFloat(y);
      var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);
      return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r)});
  });});
});
document.querySelectorAll('input.filter').forEach(function(inp){
  var t=document.getElementById(inp.getAttribute('data-table'));
  var count=document.getElementById(inp.getAttribute('data-count'));
  function apply(){
    var q=inp.value.toLowerCase(),shown=0;
    Array.prototype.forEach.call(t.tBodies[0].rows,function(r){
      var ok=r.textContent.toLowerCase().indexOf(q)>=0;r.style.display=ok?'':'none';if(ok)shown++;});
    if(count)count.textContent=shown+' / '+t.tBodies[0].rows.length;
  }
  inp.addEventListener('input',apply);apply();
});
document.body.setAttribute('data-ready','yes');
"#;

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}\n<script>{SCRIPT}</script></body></html>\n",
        esc(title)
    )
}

/// A table cell: text, and the value sorting uses when it differs from the text.
pub enum Cell {
    /// Plain text.
    Text(String),
    /// A number shown as `text`, sorted by `value`.
    Num(String, f64),
}

/// A sortable, filterable table: `id` names it for the filter box, `row_class` colours rows.
pub fn table(id: &str, heads: &[&str], rows: &[(String, Vec<Cell>)]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<p><input class=\"filter\" placeholder=\"Filter / Filtra…\" data-table=\"{id}\" data-count=\"{id}-count\"> \
         <span class=\"muted\" id=\"{id}-count\">{n} / {n}</span></p>\
         <table class=\"sortable\" id=\"{id}\"><thead><tr>",
        n = rows.len()
    );
    let numeric: Vec<bool> = (0..heads.len())
        .map(|i| {
            rows.first()
                .is_some_and(|(_, c)| matches!(c.get(i), Some(Cell::Num(..))))
        })
        .collect();
    for (i, head) in heads.iter().enumerate() {
        let class = if numeric[i] { " class=\"num\"" } else { "" };
        let _ = write!(h, "<th{class}>{}</th>", esc(head));
    }
    h.push_str("</tr></thead><tbody>");
    for (class, cells) in rows {
        let _ = write!(h, "<tr class=\"{}\">", esc(class));
        for c in cells {
            match c {
                Cell::Text(t) => {
                    let _ = write!(h, "<td>{}</td>", esc(t));
                }
                Cell::Num(t, v) => {
                    let _ = write!(h, "<td class=\"num\" data-v=\"{v}\">{}</td>", esc(t));
                }
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    h
}

/// Summary cards: (label, value).
pub fn cards(items: &[(&str, String)]) -> String {
    let mut h = String::from("<div class=\"cards\">");
    for (label, value) in items {
        let _ = write!(
            h,
            "<div class=\"card\"><b>{}</b>{}</div>",
            esc(value),
            esc(label)
        );
    }
    h.push_str("</div>");
    h
}

/// A horizontal bar chart: (label, value) pairs, as inline SVG.
pub fn bars(title: &str, items: &[(String, f64)]) -> String {
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1.0);
    let row = 22.0;
    let height = row * items.len() as f64 + 8.0;
    let mut h = format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"560\" height=\"{height}\" viewBox=\"0 0 560 {height}\">",
        esc(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let w = 360.0 * v / max;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"150\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" fill=\"#3b7dd8\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            y + 12.0,
            esc(label),
            155.0 + w,
            y + 12.0,
            v
        );
    }
    h.push_str("</svg>");
    h
}

/// A cumulative line chart over time: points (x = Unix seconds, y), as inline SVG.
pub fn line(title: &str, unit: &str, points: &[(i64, f64)]) -> String {
    let (w, hgt) = (560.0, 180.0);
    let mut h = format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\">\
         <line x1=\"40\" y1=\"160\" x2=\"550\" y2=\"160\" stroke=\"#9aa5b1\"/>\
         <line x1=\"40\" y1=\"10\" x2=\"40\" y2=\"160\" stroke=\"#9aa5b1\"/>",
        esc(title)
    );
    if points.is_empty() {
        h.push_str("<text x=\"50\" y=\"90\">—</text></svg>");
        return h;
    }
    let (x0, x1) = (
        points.first().map_or(0, |p| p.0),
        points.last().map_or(1, |p| p.0),
    );
    let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let sx = |x: i64| 40.0 + 510.0 * (x - x0) as f64 / ((x1 - x0).max(1)) as f64;
    let sy = |y: f64| 160.0 - 150.0 * y / ymax;
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
        .collect();
    let day = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let _ = write!(
        h,
        "<polyline fill=\"none\" stroke=\"#2e8b57\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"44\" y=\"20\">{:.0} {}</text>\
         <text x=\"40\" y=\"175\">{}</text><text x=\"550\" y=\"175\" text-anchor=\"end\">{}</text>",
        path.join(" "),
        ymax,
        esc(unit),
        day(x0),
        day(x1)
    );
    h.push_str("</svg>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        let p = page(
            "<x>",
            &table(
                "t",
                &["a&b"],
                &[("c\"".into(), vec![Cell::Text("<script>".into())])],
            ),
        );
        assert!(!p.contains("<script>alert") && p.contains("&lt;script&gt;"));
        assert!(p.contains("a&amp;b") && p.contains("<title>&lt;x&gt;</title>"));
        assert!(
            !p.contains("http://") && !p.contains("https://"),
            "no network"
        );
    }
}
