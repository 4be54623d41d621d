//! The audience index: per app, a roaring bitmap of all accounts, one per tag and one per
//! (attribute slot, value), over the dense account ids of the store. Conditions are evaluated
//! with in-place set algebra; counts never materialise more than they must.

mod expr;
mod index;

pub use expr::{Cmp, Expr};
pub use index::{AppIndex, AppIndexBuilder, Change};
pub use roaring::RoaringBitmap;
