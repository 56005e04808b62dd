//! The ACD domain (sans-IO): queue, agents, strategies, schedule, overflow and the B2BUA.
