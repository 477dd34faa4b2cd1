"""Conntrack events (``net/netfilter/nf_conntrack_ecache.c``): what an entry caches for
ctnetlink, and the delivery from the confirm hook. Part of :class:`.conntrack.Conntrack`."""
from __future__ import annotations

from .nf_conn import IPS_CONFIRMED, IPS_DYING, NfConn
from .tracer import untraced_branch


@untraced_branch
class CtEcache:
    """The event cache of each entry and its delivery to ctnetlink's notifier.

    ``event_cb`` (set by Conntrack, kept by the kernel's module callbacks): is ctnetlink's
    event notifier registered (``net->ct.nf_conntrack_event_cb``)? It is from the moment
    nf_conntrack_netlink is loaded (built in: always).

    ``_ecache`` (set by Conntrack): does every entry get an event cache
    (``nf_ct_ecache_ext_add``)? With nf_conntrack_events=1, 5.10's default, yes (profile key
    ``ct_event_cache``); 5.19+ default to 2, which adds one only while ctnetlink has a
    listener (``conntrack -E``, not modelled): never here.
    """

    def nf_conntrack_event_cache(self, event: int, ct: NfConn) -> None:
        """Remember ``event`` on the entry until the next delivery: only while a notifier is
        registered and the entry has an event cache (nf_conntrack_ecache.h)."""
        if self._ecache and self.event_cb:
            ct.ecache |= 1 << event

    def nf_ct_deliver_cached_events(self, ct: NfConn) -> None:
        """Hand the events cached on a confirmed, live entry to ctnetlink, which sends them
        only if someone listens (``nfnetlink_has_listeners``; the lab has no listener)."""
        with self._t("nf_ct_deliver_cached_events", ct=ct):
            if ct.ecache and self.event_cb and ct.status & IPS_CONFIRMED and not ct.status & IPS_DYING:
                ct.ecache = 0
                self._ctnetlink_event()
            with self._t("rcu_read_unlock"):
                pass

    def nf_conntrack_eventmask_report(self, ct: NfConn) -> None:
        """An event sent at once (DESTROY, from nf_ct_delete), not cached."""
        with self._t("nf_conntrack_eventmask_report", ct=ct):
            self._ctnetlink_event()
            with self._t("rcu_read_unlock"):
                pass

    def _ctnetlink_event(self) -> None:
        """ctnetlink's notifier: sends nothing unless a socket listens to the event's group."""
        with self._t("ctnetlink_conntrack_event"):
            with self._t("nfnetlink_has_listeners"):
                with self._t("netlink_has_listeners"):
                    with self._t("rcu_read_unlock"):
                        pass
