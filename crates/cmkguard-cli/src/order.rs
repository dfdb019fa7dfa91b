//! The audit's fixed output order (accounts, then regions, as asked; secrets in listing order),
//! whatever order the account-regions finish in. Each account-region writes into a lane of its
//! own; the reader takes the lanes in the order they were opened, each to its end, so the lane in
//! front streams as it is written and the others are held. At most `window` lanes wait behind the
//! one being read: opening another waits, which bounds what is held.

use tokio::sync::mpsc;

/// Opens a lane per account-region, in output order.
pub struct Lanes<T> {
    queue: mpsc::Sender<mpsc::UnboundedReceiver<T>>,
}

/// Where one account-region's items go.
pub struct Lane<T> {
    items: mpsc::UnboundedSender<T>,
}

/// Reads the lanes' items in order.
pub struct InOrder<T> {
    queue: mpsc::Receiver<mpsc::UnboundedReceiver<T>>,
    /// The lane being read.
    front: Option<mpsc::UnboundedReceiver<T>>,
}

/// Lanes, of which at most `window` (at least 1) wait behind the one being read.
pub fn lanes<T>(window: usize) -> (Lanes<T>, InOrder<T>) {
    let (queue, waiting) = mpsc::channel(window.max(1));
    (
        Lanes { queue },
        InOrder {
            queue: waiting,
            front: None,
        },
    )
}

impl<T> Lanes<T> {
    /// The next lane, once there is room for it.
    pub async fn open(&self) -> Lane<T> {
        let (items, lane) = mpsc::unbounded_channel();
        // With nothing reading any more, the lane's items are dropped as they come.
        let _ = self.queue.send(lane).await;
        Lane { items }
    }
}

impl<T> Lane<T> {
    /// Adds `item` to the lane (dropped when nothing reads any more). The lane ends when it is
    /// dropped.
    pub fn send(&self, item: T) {
        let _ = self.items.send(item);
    }
}

impl<T> InOrder<T> {
    /// The next item in order; `None` when every lane has ended and no more can be opened.
    pub async fn next(&mut self) -> Option<T> {
        loop {
            if let Some(front) = &mut self.front
                && let Some(item) = front.recv().await
            {
                return Some(item);
            }
            self.front = Some(self.queue.recv().await?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_come_out_in_lane_order_whatever_order_they_go_in() {
        let (lanes, mut in_order) = lanes(4);
        let (a, b, c) = (lanes.open().await, lanes.open().await, lanes.open().await);
        c.send("c1");
        b.send("b1");
        a.send("a1");
        b.send("b2");
        drop((c, b));
        assert_eq!(in_order.next().await, Some("a1"));
        a.send("a2");
        drop(a);
        drop(lanes);
        let mut rest = Vec::new();
        while let Some(item) = in_order.next().await {
            rest.push(item);
        }
        assert_eq!(rest, ["a2", "b1", "b2", "c1"]);
    }

    #[tokio::test]
    async fn at_most_the_window_waits_behind_the_lane_being_read() {
        let (lanes, mut in_order) = lanes::<u8>(2);
        let first = lanes.open().await;
        first.send(0);
        assert_eq!(in_order.next().await, Some(0));
        // `first` is being read; two more may wait behind it, not three.
        let _waiting = (lanes.open().await, lanes.open().await);
        let fourth = lanes.open();
        let timeout = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(timeout, fourth).await.is_err());
        // Once the front lane ends and the reader moves on, there is room again.
        drop(first);
        let reading = tokio::time::timeout(timeout, in_order.next());
        assert!(reading.await.is_err(), "the next lane is empty and open");
        lanes.open().await;
    }
}
