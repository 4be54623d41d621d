//! Each app's attribute names: ten slots, each with a name and the account type it serves.

/// Number of attribute slots an app has (`"0"`..`"9"`).
pub const ATTR_SLOTS: usize = 10;

/// One named attribute slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrSlot {
    pub name: String,
    /// 0 = UserID accounts, 1 = RegistrationID accounts.
    pub account_type: u8,
}

/// An app's attribute slots, by slot index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrSchema {
    pub slots: [Option<AttrSlot>; ATTR_SLOTS],
}

impl AttrSchema {
    /// The slot index holding attribute `name`.
    pub fn slot_of(&self, name: &str) -> Option<u8> {
        self.slots
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|s| s.name == name))
            .map(|i| i as u8)
    }

    /// The named slots as (index, slot).
    pub fn named(&self) -> impl Iterator<Item = (u8, &AttrSlot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.as_ref().map(|s| (i as u8, s)))
    }
}
