//! The registry of handler policies the attributes declare, read by the route-policy report
//! and the start-up check. Registration happens at link time (`inventory`); nothing runs per
//! request.

use std::any::TypeId;

use crate::policy::Policy;

/// What an attribute declared about one handler.
#[derive(Debug)]
pub struct HandlerRecord {
    /// The handler's name.
    pub name: &'static str,
    /// `module_path!()` where it is defined.
    pub module_path: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Line of the `fn`.
    pub line: u32,
    /// Guarded by a policy, or intentionally public.
    pub status: HandlerStatus,
    /// The `TypeId` of the handler's function item, when it is not generic.
    pub type_id: Option<fn() -> TypeId>,
}

/// How a handler is protected.
#[derive(Debug)]
pub enum HandlerStatus {
    /// Guarded by this policy.
    Guarded(&'static Policy),
    /// Marked `#[public]`: intentionally open.
    Public,
}

inventory::collect!(HandlerRecord);

impl HandlerRecord {
    /// The handler's full path, `module::name`.
    pub fn path(&self) -> String {
        format!("{}::{}", self.module_path, self.name)
    }
}

/// Every handler record in the program.
pub fn handlers() -> impl Iterator<Item = &'static HandlerRecord> {
    inventory::iter::<HandlerRecord>.into_iter()
}

/// The record of the handler whose function item has type `H`, if an attribute declared one.
pub fn lookup<H: 'static>() -> Option<&'static HandlerRecord> {
    let id = TypeId::of::<H>();
    let by_id = handlers().find(|r| r.type_id.is_some_and(|f| f() == id));
    by_id.or_else(|| {
        // Generic handlers register no TypeId; fall back to the name rustc gives the type.
        let name = std::any::type_name::<H>();
        let base = name.split('<').next().unwrap_or(name);
        handlers().find(|r| r.type_id.is_none() && r.path() == base)
    })
}

/// `TypeId` of a value's type, for the attributes' registration of a function item.
#[doc(hidden)]
pub fn type_id_of<T: 'static>(_: &T) -> TypeId {
    TypeId::of::<T>()
}
