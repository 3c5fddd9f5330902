//! What the benchmarks (`make bench`) share: the machine's description and their sections
//! of `BENCHMARKS.md`, each rewritten by its own benchmark.

use std::path::PathBuf;

/// The CPU, its cores and the architecture.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores, {}", std::env::consts::ARCH)
}

/// Replaces the section `name` of `BENCHMARKS.md` (between `<!-- name -->` and
/// `<!-- /name -->`) with `content`, adding it at the end if it is not there yet.
pub fn write_section(name: &str, content: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    let section = format!("{open}\n{}\n{close}", content.trim_end());
    let text = match (text.find(&open), text.find(&close)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{section}{}", &text[..start], &text[end + close.len()..])
        }
        _ => format!("{}\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(&path, text).expect("write BENCHMARKS.md");
    eprintln!("wrote the {name} section of {}", path.display());
}
