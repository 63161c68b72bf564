//! The template an `update` sends, got as OpenNebula's `OneHelper.update_template_helper` gets
//! it: the file given; else what is piped in; else the editor (`$EDITOR`, else `vi`), on
//! nothing to append, or on the object's current template (`TEMPLATE`, or `USER_TEMPLATE` for a
//! VM) to replace it. Also the editor for the subcommands that always open it.

use std::io::{IsTerminal, Read, Write};

use xmlrpc::Value;

use crate::client::Client;
use crate::objects::err_text;
use crate::xml::Element;

/// `update <id> [<file>]`'s text, for object `oid` read with `info_method`.
pub(crate) fn update_text(
    client: &Client,
    info_method: &str,
    oid: i32,
    path: Option<&String>,
    append: bool,
) -> Result<String, String> {
    if let Some(p) = path {
        return std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    }
    let piped = piped()?;
    if !piped.is_empty() {
        return Ok(piped);
    }
    if append {
        return edit("");
    }
    let xml = client
        .call_xml(info_method, vec![Value::Int(oid)])
        .map_err(err_text)?;
    let body = Element::parse(&xml).map_err(|e| e.0)?;
    // `one.vm.update` changes the user template (onevm's `update_template(..., 'USER_TEMPLATE')`).
    let root = if info_method == wire::method::VM_INFO {
        "USER_TEMPLATE"
    } else {
        "TEMPLATE"
    };
    let current = body
        .child(root)
        .map(|t| crate::vnet_show::like_str(t, true))
        .unwrap_or_default();
    edit(&current)
}

/// What is piped in: stdin read to its end when it is not a terminal (`OneHelper.read_stdin`).
pub(crate) fn piped() -> Result<String, String> {
    let input = std::io::stdin();
    let mut text = String::new();
    if !input.is_terminal() {
        input
            .lock()
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// `text` edited in `$EDITOR` (else `vi`), as `OneHelper.editor_input`: what was saved, or
/// "Editor not defined" when the editor fails.
pub(crate) fn edit(text: &str) -> Result<String, String> {
    let mut file = tempfile::Builder::new()
        .prefix("one_cli")
        .tempfile()
        .map_err(|e| format!("Cannot create a temporary file: {e}"))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| format!("Cannot write the temporary file: {e}"))?;
    let editor = std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    // `system("#{editor_path} #{tmp.path}")`: the editor may carry its own arguments.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .map_err(|e| format!("Cannot run the editor {editor}: {e}"))?;
    if !status.success() {
        return Err("Editor not defined".into());
    }
    std::fs::read_to_string(file.path()).map_err(|e| format!("Cannot read the edited file: {e}"))
}
