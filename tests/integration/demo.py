#!/usr/bin/python3
"""The Quick start demo: a private pcscd with a virtual reader, the virtual PIV card, and mamorid
reporting the card as it is inserted and pulled. Everything it starts it stops again."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentproc  # noqa: E402
import bench  # noqa: E402


def say(text):
    print(f'\n== {text}', flush=True)


def show_events(agent, stop):
    """Prints every mamorid line as it arrives."""
    seen = 0
    while not stop.is_set():
        lines = agent.events.lines
        for line in lines[seen:]:
            print(f'   mamorid | {line}', flush=True)
        seen = len(lines)
        time.sleep(0.02)


def main():
    with bench.TempDir(prefix='mamori-demo-') as tmp:
        pki = bench.TestPKI(tmp)
        card = pki.issue('OP0001', 'p256')
        port = bench.free_vpcd_port()
        say(f'test CA and operator card OP0001 (P-256); card id = SHA-256 of its certificate = {card.card_id}')
        say(f'starting a private pcscd with a vpcd reader on 127.0.0.1:{port}')
        with bench.Pcscd(tmp, port, debug=False) as pcscd:
            say('starting mamorid (events below, one line each)')
            agent = agentproc.Mamorid(tmp, pcscd.client_env(), {'Terminal': {'Id': 'T-DEMO', 'Office': 'demo'}})
            with agent:
                stop = threading.Event()
                printer = threading.Thread(target=show_events, args=(agent, stop), daemon=True)
                printer.start()
                agent.wait_event('reader.added', reader=bench.READER0)
                say('inserting the operator card')
                with bench.VCard(port, card.key, card.cert, '123456', trace=False) as vc:
                    agent.wait_event('card.inserted', card=card.card_id)
                    for i in range(2):
                        time.sleep(1)
                        say('pulling the card')
                        t0 = time.monotonic()
                        vc.pull()
                        ev = agent.wait_event('card.removed', card=card.card_id)
                        time.sleep(0.1)
                        print(f'   (reported {int(ev["mono_us"]) / 1e6 - t0:.3f} s after the pull)', flush=True)
                        time.sleep(1)
                        say('inserting it again')
                        vc.insert()
                        agent.wait_event('card.inserted', card=card.card_id)
                    time.sleep(0.5)
                    say('killing pcscd: mamorid must report every reader lost, then recover')
                    pcscd.kill()
                    agent.wait_event('reader.lost', reader='*')
                    pcscd.start()
                    agent.wait_event('card.inserted', timeout=20, card=card.card_id)
                    time.sleep(0.5)
                    say('stopping mamorid (SIGTERM)')
                time.sleep(0.2)
                stop.set()
                printer.join()
        lines = agent.events.lines
        for line in lines[-2:]:
            if line.startswith('agent.stop'):
                print(f'   mamorid | {line}')
        say('demo finished: every process it started has been stopped')


if __name__ == '__main__':
    main()
