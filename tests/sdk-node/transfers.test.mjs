// Transfers, broadcast transactions, assets and history through the official SDK, against a
// `keyfold dev` with its three signer processes and a real chain (anvil):
//   - POST /wallets/{id}/transfers (Native and ERC-20): built, signed by the MPC cluster,
//     broadcast, then confirmed by Keyfold's background tracker;
//   - 20 concurrent transfers from one wallet (distinct consecutive nonces), externalId
//     idempotency under concurrency;
//   - POST /wallets/{id}/transactions with a caller-built unsigned EIP-1559 transaction;
//   - GET /wallets/{id}/transfers pagination, /assets, /history;
//   - bad input refused with nothing broadcast; no RPC (400) and a dead RPC (503).
//
// Every check is made with an independent library — viem reading anvil (receipts, balances,
// nonces, the mempool, signature recovery) — never with Keyfold's code.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import {
  createPublicClient,
  createWalletClient,
  decodeEventLog,
  encodeFunctionData,
  getAddress,
  http,
  keccak256,
  parseAbi,
  parseEther,
  recoverAddress,
  serializeTransaction,
  signatureToHex,
  toHex,
} from 'viem';
import { sepolia } from 'viem/chains';

import {
  expectDfnsError,
  listAllUsers,
  makeTmpDir,
  startAnvil,
  startAndLogin,
  waitSchemeReady,
} from './lib/harness.mjs';

// ---------------------------------------------------------------------------------------
// A minimal ERC-20, compiled once with solc 0.8.28 (solc-js 0.8.28+commit.7893614a), standard
// JSON settings: optimizer enabled, runs 200, evmVersion "shanghai",
// metadata { bytecodeHash: "none", appendCBOR: false } (so the bytecode does not depend on the
// source's comments or whitespace; `npx solc@0.8.28 --standard-json` with those settings over
// the source below gives TOKEN_BYTECODE byte for byte). Source:
//
//   // SPDX-License-Identifier: MIT
//   pragma solidity 0.8.28;
//
//   contract TestToken {
//       string public constant name = "Keyfold Test USD";
//       string public constant symbol = "KTUSD";
//       uint8 public constant decimals = 6;
//       uint256 public totalSupply;
//       mapping(address => uint256) public balanceOf;
//
//       event Transfer(address indexed from, address indexed to, uint256 value);
//
//       constructor(address holder, uint256 supply) {
//           totalSupply = supply;
//           balanceOf[holder] = supply;
//           emit Transfer(address(0), holder, supply);
//       }
//
//       function transfer(address to, uint256 value) external returns (bool) {
//           balanceOf[msg.sender] -= value; // reverts (panic 0x11) when short
//           balanceOf[to] += value;
//           emit Transfer(msg.sender, to, value);
//           return true;
//       }
//   }
const TOKEN_BYTECODE =
  '0x6080604052348015600e575f5ffd5b50604051610387380380610387833981016040819052602b916083565b5f8181556001600160a01b038316808252600160209081526040808420859055518481529192917fddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef910160405180910390a3505060b8565b5f5f604083850312156093575f5ffd5b82516001600160a01b038116811460a8575f5ffd5b6020939093015192949293505050565b6102c2806100c55f395ff3fe608060405234801561000f575f5ffd5b5060043610610060575f3560e01c806306fdde031461006457806318160ddd146100a9578063313ce567146100bf57806370a08231146100d957806395d89b41146100f8578063a9059cbb1461011c575b5f5ffd5b6100936040518060400160405280601081526020016f12d95e599bdb190815195cdd081554d160821b81525081565b6040516100a091906101da565b60405180910390f35b6100b15f5481565b6040519081526020016100a0565b6100c7600681565b60405160ff90911681526020016100a0565b6100b16100e7366004610240565b60016020525f908152604090205481565b6100936040518060400160405280600581526020016412d51554d160da1b81525081565b61012f61012a366004610260565b61013f565b60405190151581526020016100a0565b335f9081526001602052604081208054839190839061015f90849061029c565b90915550506001600160a01b0383165f908152600160205260408120805484929061018b9084906102af565b90915550506040518281526001600160a01b0384169033907fddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef9060200160405180910390a35060015b92915050565b602081525f82518060208401525f5b8181101561020657602081860181015160408684010152016101e9565b505f604082850101526040601f19601f83011684010191505092915050565b80356001600160a01b038116811461023b575f5ffd5b919050565b5f60208284031215610250575f5ffd5b61025982610225565b9392505050565b5f5f60408385031215610271575f5ffd5b61027a83610225565b946020939093013593505050565b634e487b7160e01b5f52601160045260245ffd5b818103818111156101d4576101d4610288565b808201808211156101d4576101d461028856';
const TOKEN_ABI = parseAbi([
  'constructor(address holder, uint256 supply)',
  'function name() view returns (string)',
  'function symbol() view returns (string)',
  'function decimals() view returns (uint8)',
  'function totalSupply() view returns (uint256)',
  'function balanceOf(address) view returns (uint256)',
  'function transfer(address to, uint256 value) returns (bool)',
  'event Transfer(address indexed from, address indexed to, uint256 value)',
]);
const TOKEN_SUPPLY = 1_000_000n * 10n ** 6n; // 1,000,000 KTUSD (6 decimals)

// anvil's first prefunded (unlocked) account.
const FUNDER = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
const CHAIN_ID = 11155111;
const FINAL = new Set(['Confirmed', 'Failed', 'Rejected']);
const IN_FLIGHT = new Set(['Executing', 'Broadcasted', 'Confirmed']);

const lc = (a) => String(a).toLowerCase();
/** A fresh, never used address (its balance is 0). */
const freshAddress = () => getAddress(toHex(crypto.randomBytes(20)));
const isIso = (d) => typeof d === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(d) && !Number.isNaN(Date.parse(d));

describe('transfers, broadcast transactions, assets and history', () => {
  let anvil;
  let s; // { k, client, token, signer }
  let pc; // viem public client on anvil
  let funder; // viem wallet client of anvil's account 0
  let evm; // the EthereumSepolia wallet under test
  let other; // a second EthereumSepolia wallet (cross-wallet lookups)
  let polygon; // a wallet on a network with no RPC configured
  let base; // a wallet on a network whose RPC is down
  let token; // the ERC-20 contract address (supply minted to `evm`)
  let userId; // the admin's user id (requester)
  const created = new Set(); // every transfer id created on `evm`
  const done = {}; // confirmed transfers / transactions, for the history test

  before(async () => {
    anvil = await startAnvil();
    const dir = makeTmpDir();
    const cfg = path.join(dir, 'keyfold.toml');
    fs.writeFileSync(
      cfg,
      `[networks.EthereumSepolia]\nrpc_url = "${anvil.url}"\nchain_id = ${CHAIN_ID}\n` +
        // Base points at a port nobody listens on: its RPC is "down". Polygon has no section.
        `[networks.Base]\nrpc_url = "http://127.0.0.1:9"\n` +
        `[transfers]\ntracker_interval_ms = 200\n`,
    );
    s = await startAndLogin({ signers: true, args: ['--config', cfg] });
    pc = createPublicClient({ chain: sepolia, transport: http(anvil.url) });
    funder = createWalletClient({ account: FUNDER, chain: sepolia, transport: http(anvil.url) });
    userId = (await listAllUsers(s.client)).find((u) => u.username === s.k.admin.username)?.userId;
    assert.ok(userId, 'admin user not found');

    await waitSchemeReady(s.k.baseUrl, 'ECDSA');
    evm = await s.client.wallets.createWallet({ body: { network: 'EthereumSepolia', name: 'payer' } });
    other = await s.client.wallets.createWallet({ body: { network: 'EthereumSepolia', name: 'other' } });
    polygon = await s.client.wallets.createWallet({ body: { network: 'Polygon', name: 'no-rpc' } });
    base = await s.client.wallets.createWallet({ body: { network: 'Base', name: 'dead-rpc' } });

    // Funded by an ordinary transaction from anvil's account 0, seen through viem.
    const fund = await funder.sendTransaction({ to: evm.address, value: parseEther('1000') });
    assert.equal((await pc.waitForTransactionReceipt({ hash: fund })).status, 'success');
    assert.equal(await pc.getBalance({ address: evm.address }), parseEther('1000'));

    const deploy = await funder.deployContract({ abi: TOKEN_ABI, bytecode: TOKEN_BYTECODE, args: [evm.address, TOKEN_SUPPLY] });
    const r = await pc.waitForTransactionReceipt({ hash: deploy });
    assert.equal(r.status, 'success');
    token = r.contractAddress;
    assert.equal(await readToken('balanceOf', [evm.address]), TOKEN_SUPPLY);
    assert.equal(await readToken('decimals'), 6);
  });

  after(async () => {
    await s?.k.stop();
    await anvil?.stop();
  });

  // -------------------------------------------------------------------------------------
  // helpers (chain side: viem only)

  function readToken(functionName, args) {
    return pc.readContract({ address: token, abi: TOKEN_ABI, functionName, args });
  }

  /** What the chain knows of `address`'s outgoing transactions: nonce and mempool entries. */
  async function chainState(address) {
    const pool = await pc.request({ method: 'txpool_content', params: [] });
    const pooled = ['pending', 'queued'].flatMap((k) =>
      Object.entries(pool[k] ?? {})
        .filter(([a]) => lc(a) === lc(address))
        .flatMap(([, byNonce]) => Object.keys(byNonce)),
    );
    return {
      nonce: await pc.getTransactionCount({ address }),
      pendingNonce: await pc.getTransactionCount({ address, blockTag: 'pending' }),
      pooled,
    };
  }

  /** The signer recovered (viem) from an on-chain EIP-1559 tx over our unsigned serialization. */
  async function signerOf(unsigned, tx) {
    const signature = signatureToHex({ r: tx.r, s: tx.s, v: tx.yParity === 1 || tx.v === 1n ? 28n : 27n });
    return recoverAddress({ hash: keccak256(unsigned), signature });
  }

  /** EIP-1559 fees good for the next block (from the latest block's base fee, read by viem). */
  async function fees() {
    const { baseFeePerGas } = await pc.getBlock();
    const maxPriorityFeePerGas = 1_000_000_000n;
    return { maxFeePerGas: 2n * baseFeePerGas + maxPriorityFeePerGas, maxPriorityFeePerGas };
  }

  // -------------------------------------------------------------------------------------
  // helpers (API side)

  async function send(body, walletId = evm.id) {
    const t = await s.client.wallets.transferAsset({ walletId, body });
    if (walletId === evm.id) created.add(t.id);
    return t;
  }

  /** Polls `get` until a final status (bounded: 30 s). */
  async function waitFinal(get, what) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const last = await get();
      if (FINAL.has(last.status)) return last;
      if (Date.now() > deadline) throw new Error(`${what} not final after 30 s: ${JSON.stringify(last)}`);
      await sleep(100);
    }
  }

  async function confirmedTransfer(transferId, walletId = evm.id) {
    const t = await waitFinal(() => s.client.wallets.getTransfer({ walletId, transferId }), `transfer ${transferId}`);
    assert.equal(t.status, 'Confirmed', JSON.stringify(t));
    return t;
  }

  async function listAll(fn, walletId, limit) {
    const items = [];
    let paginationToken;
    let pages = 0;
    for (;;) {
      const page = await fn({ walletId, query: { limit, paginationToken } });
      pages++;
      assert.ok(Array.isArray(page.items), JSON.stringify(page));
      if (limit) assert.ok(page.items.length <= limit, `page of ${page.items.length} > limit ${limit}`);
      items.push(...page.items);
      if (!page.nextPageToken) return { items, pages };
      assert.ok(pages < 1000, 'pagination does not terminate');
      paginationToken = page.nextPageToken;
    }
  }
  const allTransfers = (walletId, limit) => listAll((r) => s.client.wallets.listTransfers(r), walletId, limit);
  const allHistory = (walletId, limit) => listAll((r) => s.client.wallets.getWalletHistory(r), walletId, limit);

  /** The transfer object's own shape (GetTransferResponse), whatever its status. */
  function assertTransferShape(t, body, wallet = evm) {
    assert.match(t.id, /^xfr-/, JSON.stringify(t));
    assert.equal(t.walletId, wallet.id);
    assert.equal(t.network, wallet.network);
    assert.equal(t.requester?.userId, userId);
    assert.deepEqual(t.requestBody, body);
    assert.ok(isIso(t.dateRequested), `dateRequested ${t.dateRequested}`);
    if (body.externalId !== undefined) assert.equal(t.externalId, body.externalId);
    if (t.txHash !== undefined) assert.match(t.txHash, /^0x[0-9a-f]{64}$/);
    if (t.status === 'Broadcasted' || t.status === 'Confirmed') {
      assert.ok(t.txHash, `a ${t.status} transfer has a txHash`);
      assert.ok(isIso(t.dateBroadcasted), `dateBroadcasted ${t.dateBroadcasted}`);
    }
  }

  /** A confirmed transfer/transaction against the chain's own record of its tx. */
  function assertMatchesChain(t, tx, receipt) {
    assert.equal(t.txHash, receipt.transactionHash);
    assert.equal(tx.hash, receipt.transactionHash);
    assert.equal(tx.chainId, CHAIN_ID);
    assert.equal(tx.type, 'eip1559');
    assert.match(t.fee, /^\d+$/, `fee ${t.fee}`);
    assert.equal(BigInt(t.fee), receipt.gasUsed * receipt.effectiveGasPrice, 'fee = gasUsed × effectiveGasPrice');
    assert.ok(isIso(t.dateBroadcasted) && isIso(t.dateConfirmed), JSON.stringify(t));
    assert.ok(Date.parse(t.dateRequested) <= Date.parse(t.dateBroadcasted), 'requested ≤ broadcasted');
    assert.ok(Date.parse(t.dateBroadcasted) <= Date.parse(t.dateConfirmed), 'broadcasted ≤ confirmed');
  }

  /** `details` (nonce and gas) equal what is on chain. */
  function assertDetails(t, tx) {
    const d = t.details;
    assert.ok(d, `details missing: ${JSON.stringify(t)}`);
    assert.equal(typeof d.nonce, 'number');
    assert.equal(d.nonce, tx.nonce);
    for (const f of ['gasLimit', 'maxFeePerGas', 'maxPriorityFeePerGas']) assert.match(d[f], /^\d+$/, `details.${f}`);
    assert.equal(BigInt(d.gasLimit), tx.gas);
    assert.equal(BigInt(d.maxFeePerGas), tx.maxFeePerGas);
    assert.equal(BigInt(d.maxPriorityFeePerGas), tx.maxPriorityFeePerGas);
  }

  // -------------------------------------------------------------------------------------

  test('Native transfer: signed, broadcast, confirmed; the recipient gets exactly the amount, the sender pays amount + fee', async () => {
    const to = freshAddress();
    const amount = parseEther('1.25');
    const senderBefore = await pc.getBalance({ address: evm.address });
    const body = { kind: 'Native', to, amount: amount.toString(), priority: 'Fast' };

    const t0 = await send(body);
    assertTransferShape(t0, body);
    assert.ok(IN_FLIGHT.has(t0.status), `status ${t0.status}: ${JSON.stringify(t0)}`);
    assert.equal(t0.metadata?.asset?.symbol, 'ETH');
    assert.equal(t0.metadata?.asset?.decimals, 18);

    const t = await confirmedTransfer(t0.id);
    assertTransferShape(t, body);
    if (t0.txHash) assert.equal(t.txHash, t0.txHash, 'the txHash does not change once signed');
    assert.equal((await s.client.wallets.getTransfer({ walletId: evm.id, transferId: t0.id })).id, t0.id);

    const receipt = await pc.getTransactionReceipt({ hash: t.txHash });
    const tx = await pc.getTransaction({ hash: t.txHash });
    assert.equal(receipt.status, 'success');
    assert.equal(lc(receipt.from), lc(evm.address));
    assert.equal(lc(receipt.to), lc(to));
    assert.equal(tx.value, amount);
    assert.equal(tx.input, '0x');
    assertMatchesChain(t, tx, receipt);
    assertDetails(t, tx);

    assert.equal(await pc.getBalance({ address: to }), amount);
    assert.equal(senderBefore - (await pc.getBalance({ address: evm.address })), amount + BigInt(t.fee));
    done.native = { t, to, amount, receipt };
  });

  test('ERC-20 transfer: confirmed, balanceOf moves by the amount; assets list Native and the token at their on-chain balances', async () => {
    const to = freshAddress();
    const amount = 1_234_567n; // 1.234567 KTUSD
    const ethBefore = await pc.getBalance({ address: evm.address });
    const tokBefore = await readToken('balanceOf', [evm.address]);
    const body = { kind: 'Erc20', contract: token, to, amount: amount.toString() };

    const t0 = await send(body);
    assertTransferShape(t0, body);
    assert.ok(IN_FLIGHT.has(t0.status), `status ${t0.status}: ${JSON.stringify(t0)}`);
    assert.equal(t0.metadata?.asset?.decimals, 6, 'decimals read from the contract');
    if (t0.metadata.asset.symbol !== undefined) assert.equal(t0.metadata.asset.symbol, 'KTUSD');

    const t = await confirmedTransfer(t0.id);
    const receipt = await pc.getTransactionReceipt({ hash: t.txHash });
    const tx = await pc.getTransaction({ hash: t.txHash });
    assert.equal(receipt.status, 'success');
    assert.equal(lc(receipt.from), lc(evm.address));
    assert.equal(lc(tx.to), lc(token), 'the transaction calls the token contract');
    assert.equal(tx.value, 0n);
    const logs = receipt.logs
      .filter((l) => lc(l.address) === lc(token))
      .map((l) => decodeEventLog({ abi: TOKEN_ABI, data: l.data, topics: l.topics }));
    assert.equal(logs.length, 1, JSON.stringify(logs, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
    assert.equal(logs[0].eventName, 'Transfer');
    assert.equal(lc(logs[0].args.from), lc(evm.address));
    assert.equal(lc(logs[0].args.to), lc(to));
    assert.equal(logs[0].args.value, amount);
    assertMatchesChain(t, tx, receipt);
    assertDetails(t, tx);

    assert.equal(await readToken('balanceOf', [to]), amount);
    assert.equal(await readToken('balanceOf', [evm.address]), tokBefore - amount);
    assert.equal(ethBefore - (await pc.getBalance({ address: evm.address })), BigInt(t.fee), 'only the fee in ETH');
    done.erc20 = { t, to, amount, receipt };

    const assets = await s.client.wallets.getWalletAssets({ walletId: evm.id });
    assert.equal(assets.walletId, evm.id);
    const natives = assets.assets.filter((a) => a.kind === 'Native');
    assert.equal(natives.length, 1, JSON.stringify(assets));
    assert.equal(natives[0].symbol, 'ETH');
    assert.equal(natives[0].decimals, 18);
    assert.equal(BigInt(natives[0].balance), await pc.getBalance({ address: evm.address }));
    const tokens = assets.assets.filter((a) => a.kind === 'Erc20' && lc(a.contract) === lc(token));
    assert.equal(tokens.length, 1, JSON.stringify(assets));
    assert.equal(tokens[0].decimals, 6);
    if (tokens[0].symbol !== undefined) assert.equal(tokens[0].symbol, 'KTUSD');
    assert.equal(BigInt(tokens[0].balance), await readToken('balanceOf', [evm.address]));
  });

  test('20 concurrent Native transfers from one wallet: all confirmed, 20 distinct consecutive nonces, the recipient gets the sum', async () => {
    const N = 20;
    const to = freshAddress();
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const senderBefore = await pc.getBalance({ address: evm.address });
    const amounts = Array.from({ length: N }, (_, i) => 1_000_000_000n * BigInt(i + 1));

    const started = await Promise.all(amounts.map((a) => send({ kind: 'Native', to, amount: a.toString() })));
    assert.equal(new Set(started.map((t) => t.id)).size, N, 'distinct transfer ids');
    const finals = await Promise.all(started.map((t) => confirmedTransfer(t.id)));
    assert.equal(new Set(finals.map((t) => t.txHash)).size, N, 'distinct txHashes');

    const txs = await Promise.all(finals.map((t) => pc.getTransaction({ hash: t.txHash })));
    const receipts = await Promise.all(finals.map((t) => pc.getTransactionReceipt({ hash: t.txHash })));
    let feeSum = 0n;
    finals.forEach((t, i) => {
      assert.equal(receipts[i].status, 'success');
      assert.equal(lc(txs[i].from), lc(evm.address));
      assert.equal(lc(txs[i].to), lc(to));
      assert.equal(txs[i].value, BigInt(t.requestBody.amount));
      assert.equal(t.details?.nonce, txs[i].nonce);
      assertMatchesChain(t, txs[i], receipts[i]);
      feeSum += BigInt(t.fee);
    });
    const nonces = txs.map((tx) => tx.nonce).sort((a, b) => a - b);
    assert.deepEqual(nonces, Array.from({ length: N }, (_, i) => start.nonce + i));
    const sum = amounts.reduce((a, b) => a + b, 0n);
    assert.equal(await pc.getBalance({ address: to }), sum);
    assert.equal(senderBefore - (await pc.getBalance({ address: evm.address })), sum + feeSum);
    const afterState = await chainState(evm.address);
    assert.equal(afterState.nonce, start.nonce + N);
    assert.deepEqual(afterState.pooled, []);
  });

  test('the same externalId twice concurrently, then once more: one transfer, one on-chain transaction', async () => {
    const to = freshAddress();
    const amount = 12_345_678_901n;
    const externalId = `xfer-${crypto.randomUUID()}`;
    const body = { kind: 'Native', to, amount: amount.toString(), externalId };
    const start = await chainState(evm.address);

    const [a, b] = await Promise.all([send(body), send(body)]);
    assert.equal(a.id, b.id);
    assertTransferShape(a, body);
    const t = await confirmedTransfer(a.id);
    const c = await send(body);
    assert.equal(c.id, a.id);
    assert.equal(c.txHash, t.txHash);

    const afterState = await chainState(evm.address);
    assert.equal(afterState.nonce, start.nonce + 1, 'exactly one transaction sent');
    assert.deepEqual(afterState.pooled, []);
    assert.equal(await pc.getBalance({ address: to }), amount, 'paid once');
    const { items } = await allTransfers(evm.id, 100);
    assert.equal(items.filter((x) => x.externalId === externalId).length, 1);
  });

  test('broadcastTransaction: a caller-built EIP-1559 transaction is signed by the wallet (viem recovers it), sent and confirmed; a wrong chainId is a 400', async () => {
    const to = freshAddress();
    const value = parseEther('0.5');
    const start = await chainState(evm.address);
    const fields = {
      type: 'eip1559',
      chainId: CHAIN_ID,
      nonce: start.pendingNonce,
      to,
      value,
      gas: 21_000n,
      ...(await fees()),
    };

    // Wrong chain first: refused, nothing sent.
    const wrong = serializeTransaction({ ...fields, chainId: 1 });
    await expectDfnsError(
      () => s.client.wallets.broadcastTransaction({ walletId: evm.id, body: { kind: 'Transaction', transaction: wrong } }),
      400,
    );
    assert.deepEqual(await chainState(evm.address), start);

    const unsigned = serializeTransaction(fields);
    const body = { kind: 'Transaction', transaction: unsigned, externalId: `tx-${crypto.randomUUID()}` };
    const res = await s.client.wallets.broadcastTransaction({ walletId: evm.id, body });
    assert.match(res.id, /^tx-/, JSON.stringify(res));
    assert.equal(res.walletId, evm.id);
    assert.equal(res.network, 'EthereumSepolia');
    assert.equal(res.requester?.userId, userId);
    assert.deepEqual(res.requestBody, body);
    assert.ok(IN_FLIGHT.has(res.status), `status ${res.status}`);
    assert.ok(isIso(res.dateRequested));

    const t = await waitFinal(() => s.client.wallets.getTransaction({ walletId: evm.id, transactionId: res.id }), `tx ${res.id}`);
    assert.equal(t.status, 'Confirmed', JSON.stringify(t));
    if (res.txHash) assert.equal(t.txHash, res.txHash);
    const receipt = await pc.getTransactionReceipt({ hash: t.txHash });
    const tx = await pc.getTransaction({ hash: t.txHash });
    assert.equal(receipt.status, 'success');
    assert.equal(receipt.transactionHash, t.txHash);
    assertMatchesChain(t, tx, receipt);

    // Exactly our transaction, signed by the wallet's key.
    assert.equal(tx.nonce, fields.nonce);
    assert.equal(lc(tx.to), lc(to));
    assert.equal(tx.value, value);
    assert.equal(tx.gas, fields.gas);
    assert.equal(tx.maxFeePerGas, fields.maxFeePerGas);
    assert.equal(tx.maxPriorityFeePerGas, fields.maxPriorityFeePerGas);
    assert.equal(lc(await signerOf(unsigned, tx)), lc(evm.address), 'signature recovers to the wallet');
    assert.equal(keccak256(serializeTransaction(fields, { r: tx.r, s: tx.s, v: tx.v })), t.txHash);
    assert.equal(await pc.getBalance({ address: to }), value);

    const again = await s.client.wallets.broadcastTransaction({ walletId: evm.id, body });
    assert.equal(again.id, res.id, 'externalId: the same transaction');
    const list = await s.client.wallets.listTransactions({ walletId: evm.id });
    assert.equal(list.items.filter((x) => x.id === res.id).length, 1);
    assert.equal((await chainState(evm.address)).nonce, start.nonce + 1);
    done.tx = { t, to, value };
  });

  test('a broadcast transaction that reverts on chain ends Failed', async () => {
    const start = await chainState(evm.address);
    const tokBefore = await readToken('balanceOf', [evm.address]);
    const fields = {
      type: 'eip1559',
      chainId: CHAIN_ID,
      nonce: start.pendingNonce,
      to: token,
      value: 0n,
      // More than the wallet holds: transfer() underflows and reverts. Gas given, so nothing
      // needs to estimate it.
      data: encodeFunctionData({ abi: TOKEN_ABI, functionName: 'transfer', args: [freshAddress(), TOKEN_SUPPLY * 10n] }),
      gas: 100_000n,
      ...(await fees()),
    };
    const res = await s.client.wallets.broadcastTransaction({
      walletId: evm.id,
      body: { kind: 'Transaction', transaction: serializeTransaction(fields) },
    });
    const t = await waitFinal(() => s.client.wallets.getTransaction({ walletId: evm.id, transactionId: res.id }), `tx ${res.id}`);
    assert.equal(t.status, 'Failed', JSON.stringify(t));
    assert.match(t.txHash ?? '', /^0x[0-9a-f]{64}$/, JSON.stringify(t));
    const receipt = await pc.getTransactionReceipt({ hash: t.txHash });
    assert.equal(receipt.status, 'reverted');
    if (t.fee !== undefined) assert.equal(BigInt(t.fee), receipt.gasUsed * receipt.effectiveGasPrice);
    assert.equal(await readToken('balanceOf', [evm.address]), tokBefore);
    assert.equal((await chainState(evm.address)).nonce, start.nonce + 1);
    done.reverted = { t };
  });

  test('listTransfers: limit 2 walks every page without duplicates; getTransfer of another wallet or an unknown id is a 404', async () => {
    // At least a few transfers exist, whatever ran before.
    while (created.size < 5) await confirmedTransfer((await send({ kind: 'Native', to: freshAddress(), amount: '1' })).id);

    const { items, pages } = await allTransfers(evm.id, 2);
    const ids = items.map((t) => t.id);
    assert.equal(new Set(ids).size, ids.length, 'no duplicates across pages');
    assert.ok(pages >= Math.ceil(created.size / 2), `${pages} pages for ${created.size} transfers`);
    for (const id of created) assert.ok(ids.includes(id), `transfer ${id} missing from the pages`);
    assert.equal(ids.length, created.size, 'nothing but this wallet’s transfers');
    for (const t of items) {
      assert.equal(t.walletId, evm.id);
      assert.match(t.id, /^xfr-/);
    }
    const one = await s.client.wallets.listTransfers({ walletId: evm.id, query: { limit: 100 } });
    assert.deepEqual(new Set(one.items.map((t) => t.id)), new Set(ids), 'one big page = the small pages');

    const someId = [...created][0];
    await expectDfnsError(() => s.client.wallets.getTransfer({ walletId: other.id, transferId: someId }), 404);
    await expectDfnsError(
      () => s.client.wallets.getTransfer({ walletId: evm.id, transferId: `xfr-${crypto.randomBytes(8).toString('hex')}` }),
      404,
    );
    const others = await s.client.wallets.listTransfers({ walletId: other.id });
    assert.deepEqual(others.items, []);
  });

  test('history: the confirmed Native and ERC-20 transfers, direction Out, with the chain’s block, time, value and fee', async () => {
    if (!done.native) {
      const to = freshAddress();
      const t = await confirmedTransfer((await send({ kind: 'Native', to, amount: '777' })).id);
      done.native = { t, to, amount: 777n, receipt: await pc.getTransactionReceipt({ hash: t.txHash }) };
    }
    if (!done.erc20) {
      const to = freshAddress();
      const t = await confirmedTransfer((await send({ kind: 'Erc20', contract: token, to, amount: '777' })).id);
      done.erc20 = { t, to, amount: 777n, receipt: await pc.getTransactionReceipt({ hash: t.txHash }) };
    }

    const { items } = await allHistory(evm.id, 10);
    const hashes = items.map((h) => lc(h.txHash));
    for (const h of items) {
      assert.equal(h.walletId, evm.id);
      assert.equal(h.network, 'EthereumSepolia');
      assert.equal(h.direction, 'Out');
      assert.ok(['NativeTransfer', 'Erc20Transfer'].includes(h.kind), h.kind);
    }

    const check = async ({ t, to, amount, receipt }, kind) => {
      const h = items.filter((x) => lc(x.txHash) === lc(t.txHash));
      assert.equal(h.length, 1, `${kind} ${t.txHash} in history: ${JSON.stringify(items)}`);
      const [item] = h;
      assert.equal(item.kind, kind);
      assert.equal(item.blockNumber, Number(receipt.blockNumber));
      const block = await pc.getBlock({ blockNumber: receipt.blockNumber });
      assert.ok(isIso(item.timestamp), item.timestamp);
      assert.equal(Math.floor(Date.parse(item.timestamp) / 1000), Number(block.timestamp), 'the block’s time');
      assert.equal(lc(item.from), lc(evm.address));
      assert.equal(lc(item.to), lc(to));
      assert.equal(item.value, amount.toString());
      assert.equal(item.fee, t.fee);
      return item;
    };
    const n = await check(done.native, 'NativeTransfer');
    assert.equal(n.symbol, 'ETH');
    assert.equal(n.decimals, 18);
    assert.equal(n.metadata?.asset?.symbol, 'ETH');
    assert.equal(n.metadata?.asset?.decimals, 18);
    const e = await check(done.erc20, 'Erc20Transfer');
    assert.equal(lc(e.contract), lc(token));
    assert.equal(e.decimals, 6);
    assert.equal(e.metadata?.asset?.decimals, 6);
    if (e.symbol !== undefined) assert.equal(e.symbol, 'KTUSD');

    // Every confirmed transfer is there; a reverted transaction is not.
    const { items: transfers } = await allTransfers(evm.id, 100);
    for (const t of transfers.filter((x) => x.status === 'Confirmed')) {
      assert.ok(hashes.includes(lc(t.txHash)), `confirmed transfer ${t.id} (${t.txHash}) missing from history`);
    }
    if (done.reverted) assert.ok(!hashes.includes(lc(done.reverted.t.txHash)), 'a reverted transaction is not history');
    assert.equal(new Set(hashes).size, hashes.length, 'no duplicates across pages');
  });

  test('bad input: a clear 4xx and nothing broadcast; no RPC is a 400, a dead RPC a 503 (recorded Failed); the next transfer uses the untouched nonce', async () => {
    const good = freshAddress();
    const start = await chainState(evm.address);
    assert.deepEqual(start.pooled, []);
    const refuse = async (body, status = 400, walletId = evm.id) => {
      const e = await expectDfnsError(() => s.client.wallets.transferAsset({ walletId, body }), status);
      assert.equal(typeof e.context?.body?.error?.message, 'string', JSON.stringify(e.context?.body));
      return e;
    };

    for (const to of ['not-an-address', '0x1234', `0x${'g'.repeat(40)}`, '']) {
      await refuse({ kind: 'Native', to, amount: '1' });
    }
    for (const amount of ['0', '-1', '1.5', 'abc', '']) {
      await refuse({ kind: 'Native', to: good, amount });
      await refuse({ kind: 'Erc20', contract: token, to: good, amount });
    }
    for (const contract of ['0x1234', 'token', `0x${'z'.repeat(40)}`]) {
      await refuse({ kind: 'Erc20', contract, to: good, amount: '1' });
    }
    await refuse({ kind: 'Erc20', contract: token, to: 'not-an-address', amount: '1' });

    const balance = await pc.getBalance({ address: evm.address });
    for (const amount of [balance + 1n, 10n ** 30n]) {
      const e = await refuse({ kind: 'Native', to: good, amount: amount.toString() });
      assert.match(e.message, /insufficient funds/i);
    }
    assert.deepEqual(await chainState(evm.address), start, 'nothing broadcast');
    assert.equal(await pc.getBalance({ address: evm.address }), balance);

    const noRpc = await refuse({ kind: 'Native', to: good, amount: '1' }, 400, polygon.id);
    assert.match(noRpc.message, /rpc_url/);
    const down = await refuse({ kind: 'Native', to: good, amount: '1' }, 503, base.id);
    assert.doesNotMatch(down.message, /127\.0\.0\.1/, 'the endpoint URL is never echoed');
    const { items: baseTransfers } = await allTransfers(base.id, 100);
    assert.equal(baseTransfers.length, 1, JSON.stringify(baseTransfers));
    assert.equal(baseTransfers[0].status, 'Failed');
    assert.equal(baseTransfers[0].walletId, base.id);
    assert.equal(lc(baseTransfers[0].requestBody?.to), lc(good));
    assert.ok(typeof baseTransfers[0].reason === 'string' && baseTransfers[0].reason.length > 0, JSON.stringify(baseTransfers[0]));
    assert.doesNotMatch(baseTransfers[0].reason, /127\.0\.0\.1/);

    assert.deepEqual(await chainState(evm.address), start, 'still nothing broadcast');
    // No nonce was burnt by the refusals: the next transfer takes the chain's next nonce.
    const t = await confirmedTransfer((await send({ kind: 'Native', to: good, amount: '1' })).id);
    assert.equal((await pc.getTransaction({ hash: t.txHash })).nonce, start.nonce);
    assert.equal(await pc.getBalance({ address: good }), 1n);
  });
});
