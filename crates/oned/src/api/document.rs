//! `one.document.*` and `one.documentpool.info`: generic documents, where OpenNebula's
//! services (OneFlow's services and service templates, OneProvision...) keep their state in the
//! cloud's database, each with a `TYPE` of the service's choosing. As OpenNebula's `Document`:
//! any name (not unique), `document-<id>` without one.

use sqlstore::objects::{self, document::DocumentRow};
use xmlrpc::Params;

use super::family::Family;
use super::method::{Auth, Method};
use super::owned;
use super::perms::Where;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};
use wire::acl::DOCUMENT;

pub static DOCUMENTS: Family<DocumentRow> = Family {
    table: objects::document::TABLE,
    kind: DOCUMENT,
    acl: "DOCUMENT",
    what: "document",
    pool: "DOCUMENT_POOL",
    template: "template",
    rows: &objects::document::ROWS,
    xml: document_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!("one.document.allocate", Write, Auth::Object, allocate),
    method!(
        "one.document.info",
        Read,
        Auth::Object,
        owned::info,
        &DOCUMENTS
    ),
    method!("one.document.delete", Write, Auth::Object, delete),
    method!("one.document.clone", Write, Auth::Object, clone),
    method!("one.documentpool.info", Read, Auth::Object, pool_info),
];

/// The owned-object calls: chmod, chown, rename, update, lock, unlock.
pub const OWNED: &[Method] = &owned_methods!(lockable "one.document", &DOCUMENTS);

/// `Document::to_xml`: `TYPE` after the name, `LOCK` after the permissions.
pub(super) fn document_xml(d: &DocumentRow, out: &mut String) {
    let h = &d.head;
    Xml::new(out).elem("DOCUMENT", |x| {
        xml::owner_and_name(x, h);
        x.num("TYPE", d.kind);
        xml::permissions(x, h.owned.perms);
        xml::lock(x, &d.lock);
        x.raw(&xml::template(&d.template, "TEMPLATE"));
    });
}

/// `Document::insert`'s only check of a name.
const MAX_NAME: usize = 128;

fn name_too_long() -> String {
    format!("NAME is too long; max length is {MAX_NAME} chars.")
}

/// The name a document's template gives (taken out of it, as OpenNebula stores it apart).
fn take_name(t: &mut template::Template) -> String {
    let name = t.single("NAME").unwrap_or_default().to_string();
    t.remove("NAME");
    name
}

async fn insert(
    ctx: &Ctx,
    s: &Session,
    name: &str,
    kind: i64,
    body: &template::Template,
) -> MethodResult {
    // `Document::insert` ends with `encrypt()`.
    let mut body = body.clone();
    super::encrypted::seal_in(ctx, objects::document::TABLE, &mut body);
    let insert = objects::document::insert(
        name,
        s.uid,
        s.gid,
        super::umask::new_object(ctx, s),
        kind,
        body.to_text(),
    );
    super::allocate_next(
        ctx,
        objects::document::TABLE,
        insert,
        "document",
        "DOCUMENT",
        name,
    )
    .await
}

/// `one.document.allocate(template, type)`.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let mut body = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    DOCUMENTS.may_create(ctx, s).await?;
    // `DocumentAllocate::pool_allocate` reads the type last.
    let kind = p.int(1)? as i64;
    let name = take_name(&mut body);
    if name.len() > MAX_NAME {
        return Err(fail(code::INTERNAL, name_too_long()));
    }
    insert(ctx, s, &name, kind, &body).await
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let stmts = vec![objects::delete(objects::document::TABLE, id)];
    owned::delete(ctx, s, &DOCUMENTS, id, stmts, |r| {
        r.missing(DOCUMENTS.missing(id))
    })
    .await
}

/// `one.document.clone(id, name)`: a copy of the template under `name`, of the same type,
/// owned by the caller, who must USE the source and may create documents.
pub async fn clone(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let source = DOCUMENTS.authorized_clone(ctx, s, id).await?;
    if name.len() > MAX_NAME {
        return Err(fail(
            code::ALLOCATE,
            format!("Error allocating a new document. {}", name_too_long()),
        ));
    }
    let body = stored(&source)?;
    insert(ctx, s, &name, source.kind, &body).await
}

/// `one.documentpool.info(filter, start, end, type)`: the documents of one type the caller
/// may USE.
pub async fn pool_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let kind = p.int(3)? as i64;
    let mut only = Where::default();
    only.and("d.type = ?", [kind]);
    DOCUMENTS.pool_info(ctx, s, p, only).await
}

/// The stored template, parsed: a corrupt one is an error, never an empty copy.
fn stored(d: &DocumentRow) -> Result<template::Template, Failure> {
    template::Template::parse(&d.template).map_err(|e| {
        xml::corrupt_template(&e);
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}
