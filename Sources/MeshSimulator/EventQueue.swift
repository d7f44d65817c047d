/// A binary min-heap of timed events, ordered by time then insertion order (so events at the
/// same instant run first-in first-out, which keeps runs deterministic).
///
/// Concrete rather than generic so that debug builds do not pay for unspecialised generics.
/// Payloads live in a slab and the heap moves only small fixed-size keys.
struct EventQueue {
    typealias Payload = SimulationEvent

    private struct Key {
        var time: Int64
        var order: UInt64
        var slot: Int32
    }

    private var heap: [Key] = []
    private var slab: [Payload?] = []
    private var freeSlots: [Int32] = []
    private var nextOrder: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: Int64? { heap.first?.time }

    mutating func push(_ payload: Payload, at time: Int64) {
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            slab[Int(free)] = payload
        } else {
            slot = Int32(slab.count)
            slab.append(payload)
        }
        nextOrder += 1
        heap.append(Key(time: time, order: nextOrder, slot: slot))
        siftUp(heap.count - 1)
    }

    mutating func pop() -> (time: Int64, payload: Payload)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        let slot = Int(top.slot)
        let payload = slab[slot]
        slab[slot] = nil
        freeSlots.append(top.slot)
        // A slot is filled on push and emptied only here, so it always holds a payload.
        return (top.time, payload!)
    }

    private static func less(_ a: Key, _ b: Key) -> Bool {
        a.time < b.time || (a.time == b.time && a.order < b.order)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        let key = heap[child]
        while child > 0 {
            let parent = (child - 1) / 2
            let parentKey = heap[parent]
            guard Self.less(key, parentKey) else { break }
            heap[child] = parentKey
            child = parent
        }
        heap[child] = key
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let key = heap[parent]
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            var best = left
            var bestKey = heap[left]
            let right = left + 1
            if right < count {
                let rightKey = heap[right]
                if Self.less(rightKey, bestKey) {
                    best = right
                    bestKey = rightKey
                }
            }
            guard Self.less(bestKey, key) else { break }
            heap[parent] = bestKey
            parent = best
        }
        heap[parent] = key
    }
}
