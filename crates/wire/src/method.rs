//! The XML-RPC method names both the CLIs and `oned` use: OpenNebula's (`one.<family>.<call>`)
//! and OneHA's own (`oneha.*`). `oned`'s method table declares each of these through its
//! constant, so a renamed call cannot leave a CLI calling the old name.

pub const ACL_ADDRULE: &str = "one.acl.addrule";
pub const ACL_DELRULE: &str = "one.acl.delrule";
pub const ACL_INFO: &str = "one.acl.info";
pub const GROUP_ALLOCATE: &str = "one.group.allocate";
pub const GROUP_DELETE: &str = "one.group.delete";
pub const GROUP_INFO: &str = "one.group.info";
pub const GROUPPOOL_INFO: &str = "one.grouppool.info";
pub const HOST_ALLOCATE: &str = "one.host.allocate";
pub const HOST_DELETE: &str = "one.host.delete";
pub const HOST_INFO: &str = "one.host.info";
pub const HOST_STATUS: &str = "one.host.status";
pub const HOSTPOOL_INFO: &str = "one.hostpool.info";
pub const SYSTEM_VERSION: &str = "one.system.version";
pub const TEMPLATE_ALLOCATE: &str = "one.template.allocate";
pub const TEMPLATE_CLONE: &str = "one.template.clone";
pub const TEMPLATE_DELETE: &str = "one.template.delete";
pub const TEMPLATE_INFO: &str = "one.template.info";
pub const TEMPLATE_INSTANTIATE: &str = "one.template.instantiate";
pub const TEMPLATEPOOL_INFO: &str = "one.templatepool.info";
pub const USER_ALLOCATE: &str = "one.user.allocate";
pub const USER_CHAUTH: &str = "one.user.chauth";
pub const USER_CHGRP: &str = "one.user.chgrp";
pub const USER_DELETE: &str = "one.user.delete";
pub const USER_ENABLE: &str = "one.user.enable";
pub const USER_INFO: &str = "one.user.info";
pub const USER_LOGIN: &str = "one.user.login";
pub const USER_PASSWD: &str = "one.user.passwd";
pub const USER_UPDATE: &str = "one.user.update";
pub const USERPOOL_INFO: &str = "one.userpool.info";
pub const VM_ACTION: &str = "one.vm.action";
pub const VM_ALLOCATE: &str = "one.vm.allocate";
pub const VM_DEPLOY: &str = "one.vm.deploy";
pub const VM_INFO: &str = "one.vm.info";
pub const VMPOOL_INFO: &str = "one.vmpool.info";
pub const ZONE_ADDSERVER: &str = "one.zone.addserver";
pub const ZONE_ALLOCATE: &str = "one.zone.allocate";
pub const ZONE_ENABLE: &str = "one.zone.enable";
pub const ZONE_RENAME: &str = "one.zone.rename";
pub const ZONE_DELSERVER: &str = "one.zone.delserver";
pub const ZONE_INFO: &str = "one.zone.info";
pub const ZONE_RAFTSTATUS: &str = "one.zone.raftstatus";
pub const ZONE_FEDREPLICATE: &str = "one.zone.fedreplicate";
/// OneHA's own: a federation master's tables whole, for a slave zone its records cannot bring
/// up to date.
pub const ONEHA_ZONE_FEDSNAPSHOT: &str = "oneha.zone.fedsnapshot";
pub const ZONE_RESETSERVER: &str = "one.zone.resetserver";
pub const ZONEPOOL_INFO: &str = "one.zonepool.info";
pub const ONEHA_DB_CHECKSUM: &str = "oneha.db.checksum";
