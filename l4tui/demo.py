"""The built-in demo scenario: a client and a server talking across two CPUs, a pager,
and a scheduler that migrates (the scenario `l4tui` and `l4tui console` open by default)."""

from __future__ import annotations

from kernel.scenario import Scenario, parse_scenario

DEMO = """
name: demo
seed: 1
machine: {profile: p3-dual-450, cpus: 2}
kernel: {xp_ipc: proxy, tcb_layout: thesis}
tasks:
  - name: pager
    threads:
      - name: pgr
        cpu: 1
        priority: 150
        program:
          - serve_faults
  - name: server
    threads:
      - name: srv
        cpu: 2
        pager: pgr
        program:
          - recv: {from: any}
          - loop:
              - touch: {addr: 0x400000, write: true}
              - compute: 200
              - reply_wait: {words: [7]}
  - name: client
    threads:
      - name: cli
        cpu: 1
        program:
          - repeat: 4
            do:
              - call: {to: srv, words: [1, 2, 3]}
              - compute: 1000
  - name: scheduler
    threads:
      - name: sched
        cpu: 1
        mcp: 200
        program:
          - sleep: 20000
          - schedule: {thread: cli, cpu: 2}
"""


def demo_scenario() -> Scenario:
    return parse_scenario(DEMO, "<demo>")
