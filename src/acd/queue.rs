//! The waiting queue: FIFO within priority lanes, every urgent caller ahead of every normal one.
//! Callers keep their place while agents are tried; a caller whose agent leg died goes back to the
//! front of their lane. Domain layer, sans-IO.

use std::collections::VecDeque;

use super::call::{CallId, Lane};

/// The queue of calls waiting for an agent (their ids; the engine holds the calls).
#[derive(Debug, Clone, Default)]
pub(crate) struct Queue {
    urgent: VecDeque<CallId>,
    normal: VecDeque<CallId>,
}

impl Queue {
    fn lane_mut(&mut self, lane: Lane) -> &mut VecDeque<CallId> {
        match lane {
            Lane::Urgent => &mut self.urgent,
            Lane::Normal => &mut self.normal,
        }
    }

    /// Appends `call` to the back of `lane`.
    pub fn push_back(&mut self, lane: Lane, call: CallId) {
        self.lane_mut(lane).push_back(call);
    }

    /// Puts `call` at the front of `lane`.
    pub fn push_front(&mut self, lane: Lane, call: CallId) {
        self.lane_mut(lane).push_front(call);
    }

    /// Removes `call` wherever it is; true if it was queued.
    pub fn remove(&mut self, call: CallId) -> bool {
        for lane in [&mut self.urgent, &mut self.normal] {
            if let Some(i) = lane.iter().position(|c| *c == call) {
                lane.remove(i);
                return true;
            }
        }
        false
    }

    /// Calls in service order: the urgent lane, then the normal lane.
    pub fn iter(&self) -> impl Iterator<Item = CallId> + '_ {
        self.urgent.iter().chain(self.normal.iter()).copied()
    }

    /// How many calls wait in `lane`.
    pub fn lane_len(&self, lane: Lane) -> usize {
        match lane {
            Lane::Urgent => self.urgent.len(),
            Lane::Normal => self.normal.len(),
        }
    }

    /// How many calls wait.
    pub fn len(&self) -> usize {
        self.urgent.len() + self.normal.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_lane_is_served_first_and_fifo_holds_within_a_lane() {
        let mut q = Queue::default();
        q.push_back(Lane::Normal, CallId(1));
        q.push_back(Lane::Urgent, CallId(2));
        q.push_back(Lane::Normal, CallId(3));
        q.push_back(Lane::Urgent, CallId(4));
        assert_eq!(q.iter().collect::<Vec<_>>(), [CallId(2), CallId(4), CallId(1), CallId(3)]);
        q.push_front(Lane::Normal, CallId(5));
        assert_eq!(q.iter().nth(2), Some(CallId(5)));
        assert!(q.remove(CallId(4)));
        assert!(!q.remove(CallId(4)));
        assert_eq!(q.len(), 4);
    }
}
