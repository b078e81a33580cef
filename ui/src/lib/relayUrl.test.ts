import { describe, expect, it } from 'vitest';
import { classifyRelayUrl, relayUrlWarning, splitRelayList } from './relayUrl';

describe('classifyRelayUrl', () => {
  it('takes wss:// as encrypted, wherever it goes', () => {
    expect(classifyRelayUrl('wss://relay.example.org')).toBe('secure');
    expect(classifyRelayUrl('  WSS://relay.example.org:8443/ ')).toBe('secure');
    expect(classifyRelayUrl('wss://127.0.0.1:8787')).toBe('secure');
  });
  it('takes ws:// to this machine as fine', () => {
    for (const url of ['ws://127.0.0.1:8787', 'ws://localhost:8787', 'ws://[::1]:8787', 'ws://127.1.2.3', 'ws://relay.localhost']) {
      expect(classifyRelayUrl(url)).toBe('loopback');
    }
  });
  it('tells plain ws:// across the network', () => {
    for (const url of ['ws://relay.example.org', 'ws://192.168.1.20:8787', 'ws://[fe80::1]:8787', 'ws://127.0.0.1.evil.example', 'ws://localhost@relay.example.org']) {
      expect(classifyRelayUrl(url)).toBe('plain');
    }
  });
  it('refuses what is not a relay address', () => {
    for (const url of ['', 'relay.example.org', 'http://relay.example.org', 'ws://', 'wss:///path']) {
      expect(classifyRelayUrl(url)).toBe('invalid');
    }
  });
});

describe('relayUrlWarning', () => {
  it('warns only for plain ws:// that leaves the machine', () => {
    expect(relayUrlWarning('ws://relay.example.org')).toMatch(/unencrypted.*wss:\/\//);
    expect(relayUrlWarning('ws://127.0.0.1:8787')).toBeNull();
    expect(relayUrlWarning('wss://relay.example.org')).toBeNull();
    expect(relayUrlWarning('nonsense')).toBeNull();
  });
  it('warns when any relay of a list is plain ws:// that leaves the machine', () => {
    expect(relayUrlWarning('wss://a.example.org, wss://b.example.org')).toBeNull();
    expect(relayUrlWarning('ws://127.0.0.1:8787 ws://127.0.0.1:8788')).toBeNull();
    expect(relayUrlWarning('wss://a.example.org,ws://b.example.org')).toMatch(/unencrypted/);
  });
});

describe('splitRelayList', () => {
  it('takes commas and/or white space between addresses, as the app does', () => {
    expect(splitRelayList('ws://a:1,ws://b:2')).toEqual(['ws://a:1', 'ws://b:2']);
    expect(splitRelayList(' ws://a:1 ,\n ws://b:2, ')).toEqual(['ws://a:1', 'ws://b:2']);
    expect(splitRelayList('wss://relay.example.org')).toEqual(['wss://relay.example.org']);
    expect(splitRelayList(' , ')).toEqual([]);
  });
});
