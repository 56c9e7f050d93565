//! A user's devices in the broker's cache: a few per user, so a vector
//! sorted by device id, sized exactly, instead of a hash map (whose
//! smallest table holds four slots: about 700 bytes for a user with one
//! device, the common case, and most of an idle session's memory).

use super::users::Dev;

/// Devices by id.
#[derive(Default)]
pub(crate) struct DeviceMap {
    devs: Vec<(u32, Dev)>,
}

impl DeviceMap {
    fn find(&self, device: u32) -> Result<usize, usize> {
        self.devs.binary_search_by_key(&device, |(d, _)| *d)
    }

    pub fn get(&self, device: &u32) -> Option<&Dev> {
        self.find(*device).ok().map(|i| &self.devs[i].1)
    }

    pub fn get_mut(&mut self, device: &u32) -> Option<&mut Dev> {
        self.find(*device).ok().map(|i| &mut self.devs[i].1)
    }

    /// The device, inserted from `make` if absent.
    pub fn get_or_insert_with(&mut self, device: u32, make: impl FnOnce() -> Dev) -> &mut Dev {
        let i = match self.find(device) {
            Ok(i) => i,
            Err(i) => {
                self.devs.reserve_exact(1);
                self.devs.insert(i, (device, make()));
                i
            }
        };
        &mut self.devs[i].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u32, &Dev)> {
        self.devs.iter().map(|(d, v)| (d, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &Dev> {
        self.devs.iter().map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.devs.is_empty()
    }
}

impl FromIterator<(u32, Dev)> for DeviceMap {
    fn from_iter<I: IntoIterator<Item = (u32, Dev)>>(iter: I) -> Self {
        let mut devs: Vec<(u32, Dev)> = iter.into_iter().collect();
        devs.sort_unstable_by_key(|(d, _)| *d);
        devs.dedup_by_key(|(d, _)| *d);
        devs.shrink_to_fit();
        DeviceMap { devs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeviceState;

    #[test]
    fn devices_are_found_by_id_whatever_the_insertion_order() {
        let mut m = DeviceMap::default();
        for d in [5u32, 1, 9, 3] {
            m.get_or_insert_with(d, || Dev::new(DeviceState::default()))
                .staged
                .checkpoint = u64::from(d);
        }
        let ids: Vec<u32> = m.iter().map(|(d, _)| *d).collect();
        assert_eq!(ids, [1, 3, 5, 9]);
        assert_eq!(m.get(&9).map(|d| d.staged.checkpoint), Some(9));
        assert!(m.get(&2).is_none());
        m.get_or_insert_with(3, || unreachable!("present")).dirty = true;
        assert!(m.get_mut(&3).is_some_and(|d| d.dirty));
    }
}
