//! §5 bundle size: the JavaScript a storefront at `/` loads, as served (gzip when offered).

use crate::preflight::http::Probe;
use crate::preflight::report::{Outcome, Report};
use reqwest::{Method, Url};

const BUNDLE_TARGET_BYTES: u64 = 250 * 1024;

/// §5 bundle size: N/A when no storefront is served at `/`.
pub async fn run(p: &Probe, r: &mut Report) -> Result<(), String> {
    let page = p
        .send(Method::GET, "/", None, None, &[("accept", "text/html")])
        .await?;
    let html = page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html"));
    if page.status != 200 || !html {
        r.set(
            "perf.bundle",
            Outcome::na(format!(
                "no storefront served at / (GET / → {})",
                page.brief()
            )),
        );
        return Ok(());
    }
    let base = Url::parse(&format!("{}/", p.base)).map_err(|e| e.to_string())?;
    let scripts = script_links(&page.text);
    r.set("perf.bundle", measure(p, &base, &scripts).await?);
    Ok(())
}

/// The `.js` and `.mjs` files a page references (`src` or `href`), sorted, each once.
fn script_links(html: &str) -> Vec<String> {
    let mut scripts: Vec<String> = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            if let Some(end) = part.find('"') {
                let link = &part[..end];
                if link.ends_with(".js") || link.ends_with(".mjs") {
                    scripts.push(link.to_owned());
                }
            }
        }
    }
    scripts.sort();
    scripts.dedup();
    scripts
}

/// Fetch every script as a browser would (offering gzip) and judge their total size.
async fn measure(p: &Probe, base: &Url, scripts: &[String]) -> Result<Outcome, String> {
    let mut total = 0u64;
    let mut all_gzip = true;
    for s in scripts {
        let url = base.join(s).map_err(|e| format!("{s}: {e}"))?;
        let a = p
            .send(
                Method::GET,
                url.as_str(),
                None,
                None,
                &[("accept-encoding", "gzip")],
            )
            .await?;
        if a.status != 200 {
            return Ok(Outcome::fail(format!(
                "{s} referenced by / → {}",
                a.brief()
            )));
        }
        all_gzip &= a.header("content-encoding") == Some("gzip");
        total += a.text.len() as u64;
    }
    let kb = total as f64 / 1024.0;
    Ok(if scripts.is_empty() {
        Outcome::warn("the page at / references no JavaScript file")
    } else if total < BUNDLE_TARGET_BYTES {
        Outcome::pass(format!(
            "{} script(s) referenced by /: {kb:.1} KB {}",
            scripts.len(),
            if all_gzip {
                "gzip"
            } else {
                "as served (uncompressed: gzip is smaller)"
            }
        ))
    } else if all_gzip {
        Outcome::fail(format!(
            "{} script(s): {kb:.1} KB gzip ≥ {} KB",
            scripts.len(),
            BUNDLE_TARGET_BYTES / 1024
        ))
    } else {
        Outcome::warn(format!(
            "{} script(s): {kb:.1} KB served uncompressed; the gzip size is unknown (serve with gzip)",
            scripts.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::script_links;

    #[test]
    fn script_links_are_the_js_files_referenced_once_each() {
        let html = r#"<link rel="modulepreload" href="/assets/b.mjs"><link href="/s.css">
            <script type="module" src="/assets/a.js"></script><script src="/assets/a.js"></script>"#;
        assert_eq!(script_links(html), ["/assets/a.js", "/assets/b.mjs"]);
    }
}
