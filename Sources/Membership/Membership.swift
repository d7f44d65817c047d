// Membership: SWIM + Lifeguard core (placeholder until the core lands).
