//! `oneimage create [<file>] -d <datastore>`: the image from a template file, or from the
//! template options (`OneImageHelper::TEMPLATE_OPTIONS` and `create_image_template`), checked
//! and written as OpenNebula's option procs do.

use std::io::{IsTerminal, Read, Write};

use xmlrpc::Value;

use crate::client::Client;
use crate::image::{datastore_option, TYPES};
use crate::objects::{err_text, file_text, Opts};

/// `PREFIXES`: paths taken as URLs rather than files.
const URL_SCHEMES: [&str; 6] = ["http", "https", "ssh", "s3", "rbd", "lxd"];

/// The template options, as `--flag` and the option's name, in `TEMPLATE_OPTIONS` order.
const TEMPLATE_OPTIONS: [(&str, &str); 12] = [
    ("--description", "description"),
    ("--type", "type"),
    ("--persistent", "persistent"),
    ("--prefix", "prefix"),
    ("--target", "target"),
    ("--path", "path"),
    ("--format", "format"),
    ("--fs", "fs"),
    ("--disk_type", "disk_type"),
    ("--source", "source"),
    ("--size", "size"),
    ("--dry", "dry"),
];

/// Option `name` failed its proc: its message, then OpenNebula's parsing error line.
fn parsing_error(message: &str, name: &str) -> String {
    format!("{message}\noption {name}: Parsing error")
}

/// The `--type` proc: upper-cased, one of `Image::IMAGE_TYPES`.
fn image_type(o: &Opts) -> Result<Option<String>, String> {
    o.value(&["--type"])
        .map(|t| {
            let t = t.trim().to_uppercase();
            if TYPES.contains(&t.as_str()) {
                Ok(t)
            } else {
                Err(parsing_error(
                    &format!("Type should be: {}", TYPES.join(", ")),
                    "type",
                ))
            }
        })
        .transpose()
}

/// The `--prefix` proc: lower-cased, hd, sd, xvd or vd.
fn prefix(o: &Opts) -> Result<Option<String>, String> {
    o.value(&["--prefix"])
        .map(|p| {
            let p = p.trim().to_lowercase();
            if ["hd", "sd", "xvd", "vd"].contains(&p.as_str()) {
                Ok(p)
            } else {
                Err(parsing_error(
                    "The prefix must be hd, sd, xvd or vd",
                    "prefix",
                ))
            }
        })
        .transpose()
}

/// The `--path` proc: a URL as it is, a relative path made absolute.
fn path(o: &Opts) -> Result<Option<String>, String> {
    let Some(p) = o.value(&["--path"]) else {
        return Ok(None);
    };
    let url = URL_SCHEMES
        .iter()
        .any(|s| p.starts_with(&format!("{s}://")));
    if url || p.starts_with('/') {
        return Ok(Some(p));
    }
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    Ok(Some(format!("{}/{p}", cwd.display())))
}

/// The `--size` proc: `/^(\d+(?:\.\d+)?)(m|mb|g|gb)?$/i` in whole MB (rounded down).
pub(crate) fn size_mb(value: &str) -> Option<i64> {
    let v = value.trim();
    let digits_end = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(digits_end);
    let well_formed = match number.split_once('.') {
        Some((whole, frac)) => {
            !whole.is_empty()
                && !frac.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => !number.is_empty(),
    };
    if !well_formed {
        return None;
    }
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" => 1.0,
        "g" | "gb" => 1024.0,
        _ => return None,
    };
    let mb = (number.parse::<f64>().ok()? * multiplier).floor();
    (mb.is_finite() && mb < i64::MAX as f64).then_some(mb as i64)
}

fn size(o: &Opts) -> Result<Option<i64>, String> {
    o.value(&["--size"])
        .map(|s| size_mb(&s).ok_or_else(|| parsing_error("Size value malformed", "size")))
        .transpose()
}

/// `create_template_options_used?`: the template options given, in the order given.
fn template_options_used(o: &Opts) -> Vec<&'static str> {
    let mut used: Vec<&'static str> = Vec::new();
    for (flag, _) in &o.flags {
        let name = TEMPLATE_OPTIONS
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, n)| *n);
        if let Some(n) = name.filter(|n| !used.contains(n)) {
            used.push(n);
        }
    }
    used
}

/// What the template options make, as `create_image_template`.
struct Options {
    type_: Option<String>,
    prefix: Option<String>,
    path: Option<String>,
    size: Option<i64>,
}

fn template(o: &Opts, v: &Options) -> String {
    let mut t = String::new();
    let mut var = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            t.push_str(&format!("{name}=\"{value}\"\n"));
        }
    };
    var("DESCRIPTION", o.value(&["--description"]));
    var("TYPE", v.type_.clone());
    var("TARGET", o.value(&["--target"]));
    var("PATH", v.path.clone());
    var("FORMAT", o.value(&["--format"]));
    var("FS", o.value(&["--fs"]));
    var("DISK_TYPE", o.value(&["--disk_type"]));
    var("SOURCE", o.value(&["--source"]));
    var("SIZE", v.size.map(|s| s.to_string()));
    var("NAME", o.value(&["--name"]));
    if o.flag(&["--persistent"]) {
        t.push_str("PERSISTENT=YES\n");
    }
    if let Some(p) = &v.prefix {
        t.push_str(&format!("DEV_PREFIX=\"{p}\"\n"));
    }
    t
}

/// What is piped in, if anything (never waiting on a terminal).
fn piped() -> Result<String, String> {
    let mut text = String::new();
    let input = std::io::stdin();
    if !input.is_terminal() {
        input
            .lock()
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// `oneimage create`.
pub(crate) fn create(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    // The option procs first, in the order OpenNebula defines the options.
    let ds = datastore_option(o, client)?;
    let v = Options {
        type_: image_type(o)?,
        prefix: prefix(o)?,
        path: path(o)?,
        size: size(o)?,
    };
    let dry = o.flag(&["--dry"]);
    let Some(ds) = ds.or(if dry { Some(-1) } else { None }) else {
        return Err("Datastore to save the image is mandatory: \n\t -d datastore_id".into());
    };
    let used = template_options_used(o);
    let file = o.words.get(1);
    // OpenNebula looks at stdin when no file is given; it is only read here when no template
    // option is given either, as waiting on it is not possible without blocking.
    let stdin = match (file, used.is_empty()) {
        (None, true) => piped()?,
        _ => String::new(),
    };
    if (file.is_some() || !stdin.is_empty()) && !used.is_empty() {
        return Err(format!(
            "You cannot pass template on STDIN and use template creation options, \
             conflicting options: {}.",
            used.join(", ")
        ));
    }
    let text = match file {
        Some(_) => file_text(file)?,
        None if !stdin.is_empty() => stdin,
        None => template(o, &v),
    };
    if dry {
        let end = if text.ends_with('\n') { "" } else { "\n" };
        return write!(out, "{text}{end}").map_err(|e| e.to_string());
    }
    let no_check = o.flag(&["--no_check_capacity"]);
    let id = client
        .call(
            "one.image.allocate",
            vec![Value::String(text), Value::Int(ds), Value::Bool(no_check)],
        )
        .map_err(err_text)?;
    writeln!(out, "ID: {}", id.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[(&str, Option<&str>)]) -> Opts {
        Opts {
            words: vec!["create".into()],
            flags: args
                .iter()
                .map(|(f, v)| (f.to_string(), v.map(String::from)))
                .collect(),
        }
    }

    #[test]
    fn sizes_are_read_as_opennebulas_size_option() {
        assert_eq!(size_mb("400"), Some(400));
        assert_eq!(size_mb(" 2g "), Some(2048));
        assert_eq!(size_mb("1.5GB"), Some(1536));
        assert_eq!(size_mb("10.7m"), Some(10));
        for bad in ["", "x", "1.", ".5", "5k", "1.2.3", "-1"] {
            assert_eq!(size_mb(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_template_options_make_opennebulas_template() {
        let o = opts(&[
            ("--persistent", None),
            ("--prefix", Some("SD")),
            ("--size", Some("1g")),
            ("--type", Some(" datablock")),
            ("--name", Some("data")),
            ("--description", Some("scratch")),
            ("--format", Some("raw")),
        ]);
        let v = Options {
            type_: image_type(&o).unwrap(),
            prefix: prefix(&o).unwrap(),
            path: path(&o).unwrap(),
            size: size(&o).unwrap(),
        };
        assert_eq!(
            template(&o, &v),
            "DESCRIPTION=\"scratch\"\nTYPE=\"DATABLOCK\"\nFORMAT=\"raw\"\nSIZE=\"1024\"\n\
             NAME=\"data\"\nPERSISTENT=YES\nDEV_PREFIX=\"sd\"\n"
        );
        assert_eq!(
            template_options_used(&o),
            [
                "persistent",
                "prefix",
                "size",
                "type",
                "description",
                "format"
            ]
        );
        let bad = opts(&[("--type", Some("disk"))]);
        assert_eq!(
            image_type(&bad),
            Err(
                "Type should be: OS, CDROM, DATABLOCK, KERNEL, RAMDISK, CONTEXT, BACKUP\n\
                 option type: Parsing error"
                    .into()
            )
        );
        let url = opts(&[("--path", Some("https://x/y.img"))]);
        assert_eq!(path(&url).unwrap().as_deref(), Some("https://x/y.img"));
        let rel = opts(&[("--path", Some("y.img"))]);
        assert!(path(&rel).unwrap().unwrap().ends_with("/y.img"));
    }
}
