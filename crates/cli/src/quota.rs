//! The quota templates of `oneuser` and `onegroup` (`quota`, `batchquota`, `defaultquota`), as
//! `OneQuotaHelper` makes them: read from the file given, or edited in `$EDITOR` (else `vi`)
//! over the help text and the quotas as they are.

use xmlrpc::Value;

use crate::client::Client;
use crate::xml::Element;

const HELP_QUOTA: &str = "\
#-----------------------------------------------------------------------
# Supported quota limits:
#
#  DATASTORE = [
#    ID     = <ID of the datastore>
#    IMAGES = <Max. number of images in the datastore>
#    SIZE   = <Max. storage capacity (Mb) used in the datastore>
#  ]
#
#  VM = [
#    VMS              = <Max. number of VMs>
#    RUNNING_VMS      = <Max. number of running VMs>
#    MEMORY           = <Max. allocated memory (MB)>
#    RUNNING_MEMORY   = <Max. running memory (MB)>
#    CPU              = <Max. allocated CPU>
#    RUNNING_CPU      = <Max. running CPU>
#    SYSTEM_DISK_SIZE = <Max. allocated system disk (MB)>
#  ]
#
#  NETWORK = [
#    ID     = <ID of the network>
#    LEASES = <Max. number of IP leases from the network>
#  ]
#
#  IMAGE = [
#    ID     = <ID of the image>
#    RVMS   = <Max. number of VMs using the image>
#  ]
";

const HELP_QUOTA_FOOTER: &str = "\
#
#  In any quota:
#    -1 means use the default limit (set with the 'defaultquota' command)
#    -2 means unlimited.
#
#  The usage counters \"*_USED\" are shown for information
#  purposes and will NOT be modified.
#-----------------------------------------------------------------------
";

const HELP_DEFAULT_QUOTA_FOOTER: &str = "\
#
#  In any quota:
#    -2 means unlimited.
#
#  The usage counters \"*_USED\" will always be 0 for the default
#  quotas, and can be ignored.
#-----------------------------------------------------------------------
";

const CONTAINERS: [&str; 4] = [
    "DATASTORE_QUOTA",
    "VM_QUOTA",
    "NETWORK_QUOTA",
    "IMAGE_QUOTA",
];

/// Whose quotas a template is for.
pub(crate) enum Whose {
    /// User or group `id` (`quota`).
    One(i32),
    /// The defaults (`defaultquota`).
    Defaults,
    /// Several at once (`batchquota`): the editor starts from the help alone.
    Batch,
}

/// The quota template of `family` (`user`, `group`): the file at `path`, or edited
/// (`OneQuotaHelper.set_quota`, `get_batch_quota`).
pub(crate) fn template(
    client: &Client,
    family: &str,
    path: Option<&String>,
    whose: Whose,
) -> Result<String, String> {
    if let Some(p) = path {
        return std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    }
    let mut text = HELP_QUOTA.to_string();
    let current = match whose {
        Whose::One(id) => {
            text.push_str(HELP_QUOTA_FOOTER);
            Some(info(
                client,
                &format!("one.{family}.info"),
                vec![Value::Int(id)],
            )?)
        }
        Whose::Defaults => {
            text.push_str(HELP_DEFAULT_QUOTA_FOOTER);
            Some(info(client, &format!("one.{family}quota.info"), vec![])?)
        }
        Whose::Batch => {
            text.push('\n');
            None
        }
    };
    if let Some(root) = current {
        for name in CONTAINERS {
            if let Some(c) = root.child(name) {
                text.push_str(&crate::vnet_show::like_str(c, true));
            }
            text.push('\n');
        }
    }
    crate::editor::edit(&text)
}

fn info(client: &Client, method: &str, params: Vec<Value>) -> Result<Element, String> {
    let xml = client
        .call(method, params)
        .map_err(crate::objects::err_text)?;
    let xml = xml.as_str().unwrap_or_default();
    Element::parse(xml).map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_given_is_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q");
        std::fs::write(&p, "VM = [ VMS = 3 ]").unwrap();
        let client = crate::client::Client::new(
            "http://127.0.0.1:1/RPC2",
            "a:b",
            std::time::Duration::from_secs(1),
        );
        let path = p.to_string_lossy().into_owned();
        let t = super::template(&client, "user", Some(&path), super::Whose::Batch).unwrap();
        assert_eq!(t, "VM = [ VMS = 3 ]");
    }
}
