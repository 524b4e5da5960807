// Cross-check of keyfold-chains' EVM module against viem, an independent implementation.
//
// Generates pseudo-random keys, messages, typed data and transactions from a fixed seed, computes
// with viem what keyfold-chains must compute (hashMessage, hashTypedData,
// keccak256(serializeTransaction(tx)), serializeTransaction(tx, signature) exactly as
// @dfns/lib-viem calls it, signatures and recovery), writes them to ../vectors/viem.json, then
// runs the Rust test that reads that file (tests/viem_vectors.rs).
//
//   npm ci && node check.mjs              regenerate the vectors, then `cargo test --test viem_vectors`
//   node check.mjs --verify               fail if the committed vectors differ from what this viem
//                                         produces (nothing is written), then run the Rust test
//   node check.mjs --no-cargo             only (re)generate the vectors
//
// The seed is fixed, so regenerating with the same viem gives the same file; a diff means viem's
// behaviour (or this script) changed. `cargo test` alone never needs Node: it reads the committed file.

import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  getAddress,
  hashMessage,
  hashTypedData,
  keccak256,
  serializeSignature,
  serializeTransaction,
  stringToHex,
  toHex,
} from 'viem'
import { privateKeyToAccount, sign } from 'viem/accounts'

const here = dirname(fileURLToPath(import.meta.url))
const crateDir = join(here, '..', '..')
const vectorsPath = join(crateDir, 'tests', 'vectors', 'viem.json')
const viemVersion = JSON.parse(readFileSync(join(here, 'node_modules', 'viem', 'package.json'), 'utf8')).version
const args = new Set(process.argv.slice(2))

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: a keccak256 counter stream from a fixed seed.
const SEED = 'keyfold-chains/viem-vectors/v1'
let counter = 0
let pool = new Uint8Array(0)
function randomBytes(n) {
  const out = new Uint8Array(n)
  let filled = 0
  while (filled < n) {
    if (pool.length === 0) {
      pool = Buffer.from(keccak256(stringToHex(`${SEED}/${counter++}`)).slice(2), 'hex')
    }
    const take = Math.min(pool.length, n - filled)
    out.set(pool.subarray(0, take), filled)
    pool = pool.subarray(take)
    filled += take
  }
  return out
}
const randomHex = (n) => toHex(randomBytes(n))
const randomBig = (bits) => {
  if (bits === 0) return 0n
  const bytes = Math.ceil(bits / 8)
  const v = BigInt(toHex(randomBytes(bytes)))
  return v & ((1n << BigInt(bits)) - 1n)
}
const randomInt = (n) => Number(randomBig(32) % BigInt(n)) // 0..n-1
const pick = (items) => items[randomInt(items.length)]
const chance = (p) => randomInt(1000) < p * 1000

// JSON with bigints as decimal strings.
const toJson = (value) =>
  JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n'

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`)
}

// ---------------------------------------------------------------------------------------------
// Keys.
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
function randomPrivateKey() {
  for (;;) {
    const k = randomHex(32)
    const v = BigInt(k)
    if (v > 0n && v < N) return k
  }
}

const keys = []
for (let i = 0; i < 16; i++) {
  const privateKey = randomPrivateKey()
  const account = privateKeyToAccount(privateKey)
  const uncompressed = account.publicKey // 0x04 ‖ x ‖ y
  const x = uncompressed.slice(4, 68)
  const yOdd = BigInt('0x' + uncompressed.slice(68)) & 1n
  keys.push({
    privateKey,
    publicKeyUncompressed: uncompressed,
    publicKeyCompressed: (yOdd ? '0x03' : '0x02') + x,
    address: account.address,
  })
}
const accounts = keys.map((k) => privateKeyToAccount(k.privateKey))

function splitSignature(hex) {
  assert(hex.length === 132, 'signature is 65 bytes')
  const v = parseInt(hex.slice(130), 16)
  return { r: '0x' + hex.slice(2, 66), s: '0x' + hex.slice(66, 130), recid: v - 27 }
}

// ---------------------------------------------------------------------------------------------
// EIP-191 messages: what a Dfns `Message` request on an EVM wallet carries (hex of the bytes).
const messages = []
const messageLengths = [0, 1, 31, 32, 33, 64, 100, 255, 256, 1000]
for (let i = 0; i < 24; i++) {
  const key = randomInt(keys.length)
  let message
  if (i < messageLengths.length) message = randomHex(messageLengths[i])
  else if (i % 3 === 0) message = stringToHex(pick(['Hello World', 'héllo wörld ✓', 'Sign in to Keyfold\nNonce: 42', '']))
  else message = randomHex(randomInt(300))
  const digest = hashMessage({ raw: message })
  const signature = await accounts[key].signMessage({ message: { raw: message } })
  messages.push({ key, message, digest, signature: { ...splitSignature(signature), encoded: signature } })
}

// ---------------------------------------------------------------------------------------------
// EIP-712 typed data.
const INT_SIZES = Array.from({ length: 32 }, (_, i) => (i + 1) * 8)
function randomAtomicType() {
  switch (randomInt(7)) {
    case 0: return 'address'
    case 1: return 'bool'
    case 2: return 'string'
    case 3: return 'bytes'
    case 4: return `bytes${1 + randomInt(32)}`
    case 5: return `uint${pick(INT_SIZES)}`
    default: return `int${pick(INT_SIZES)}`
  }
}

// Returns [viemValue, jsonValue]: viem gets bigints, the JSON gets what a Dfns client would send.
function randomValue(type, types) {
  const array = type.match(/^(.*)\[([0-9]*)\]$/)
  if (array) {
    const len = array[2] === '' ? randomInt(4) : Number(array[2])
    const pairs = Array.from({ length: len }, () => randomValue(array[1], types))
    return [pairs.map((p) => p[0]), pairs.map((p) => p[1])]
  }
  if (types[type]) {
    const viemValue = {}
    const jsonValue = {}
    for (const field of types[type]) {
      const [v, j] = randomValue(field.type, types)
      viemValue[field.name] = v
      jsonValue[field.name] = j
    }
    return [viemValue, jsonValue]
  }
  if (type === 'address') {
    const a = getAddress(randomHex(20))
    const text = chance(0.5) ? a : a.toLowerCase()
    return [text, text]
  }
  if (type === 'bool') {
    const b = chance(0.5)
    return [b, b]
  }
  if (type === 'string') {
    const s = pick(['', 'Hello, Bob!', 'ünïcödé ✓ 🚀', 'a'.repeat(randomInt(80)), randomHex(8)])
    return [s, s]
  }
  if (type === 'bytes') {
    const h = randomHex(randomInt(70))
    return [h, h]
  }
  const fixed = type.match(/^bytes([0-9]+)$/)
  if (fixed) {
    const h = randomHex(Number(fixed[1]))
    return [h, h]
  }
  const int = type.match(/^(u?)int([0-9]+)$/)
  if (int) {
    const bits = Number(int[2])
    let v
    if (int[1] === 'u') v = randomBig(randomInt(bits + 1))
    else {
      v = randomBig(randomInt(bits))
      if (chance(0.5)) v = -v
      if (chance(0.05)) v = -(1n << BigInt(bits - 1)) // the minimum
    }
    // JSON: a number when it is exactly representable, else a decimal string, sometimes hex.
    let j
    if (v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n && chance(0.4)) j = Number(v)
    else if (v >= 0n && chance(0.3)) j = '0x' + v.toString(16)
    else j = v.toString()
    return [v, j]
  }
  throw new Error(`no value for ${type}`)
}

let structCounter = 0
function randomStruct(types, depth) {
  const name = pick(['Order', 'Permit', 'Mail', 'Person', 'Asset', 'Item', 'Vote', 'Call']) + (structCounter++)
  types[name] = [] // reserve the name before fields refer to other structs
  const fields = []
  const count = randomInt(6)
  for (let i = 0; i < count; i++) {
    let type = depth < 2 && chance(0.25) ? randomStruct(types, depth + 1) : randomAtomicType()
    if (chance(0.2)) type += chance(0.5) ? '[]' : `[${1 + randomInt(3)}]`
    if (chance(0.05)) type += '[]'
    fields.push({ name: `f${i}_${pick(['a', 'to', 'amount', 'data', 'x'])}`, type })
  }
  types[name] = fields
  return name
}

function randomDomain() {
  const domain = {}
  if (chance(0.8)) domain.name = pick(['Ether Mail', 'Permit2', 'Keyfold', '', 'ünï'])
  if (chance(0.7)) domain.version = pick(['1', '2', '1.0.0'])
  if (chance(0.8)) domain.chainId = pick([1, 11155111, 8453, 137, 42161, 10, 56, 43114, 31337])
  if (chance(0.7)) domain.verifyingContract = getAddress(randomHex(20))
  if (chance(0.3)) domain.salt = randomHex(32)
  return domain
}

const DOMAIN_ORDER = [
  ['name', 'string'],
  ['version', 'string'],
  ['chainId', 'uint256'],
  ['verifyingContract', 'address'],
  ['salt', 'bytes32'],
]

const typedData = []
for (let i = 0; i < 40; i++) {
  const key = randomInt(keys.length)
  const types = {}
  const primaryType = randomStruct(types, 0)
  const [viemMessage, jsonMessage] = randomValue(primaryType, types)
  const domain = randomDomain()
  const jsonTypes = structuredClone(types)
  // Some documents declare EIP712Domain themselves, sometimes in a non-canonical order.
  if (i % 4 === 1) {
    const fields = DOMAIN_ORDER.filter(([n]) => domain[n] !== undefined).map(([name, type]) => ({ name, type }))
    if (i % 8 === 5) fields.reverse()
    types.EIP712Domain = fields
    jsonTypes.EIP712Domain = fields
  }
  const hash = hashTypedData({ domain, types, primaryType, message: viemMessage })
  const signature = await accounts[key].signTypedData({ domain, types, primaryType, message: viemMessage })
  const doc = { types: jsonTypes, domain, message: jsonMessage }
  // The Dfns `Eip712` kind has no primaryType: omit it from half the documents (every generated
  // document has a single root struct, so it can be derived).
  if (i % 2 === 0) doc.primaryType = primaryType
  typedData.push({ key, typedData: doc, hash, signature: { ...splitSignature(signature), encoded: signature } })
}

// Hand-written edge cases, hashed by viem too.
const mail = {
  types: {
    Person: [
      { name: 'name', type: 'string' },
      { name: 'wallet', type: 'address' },
    ],
    Mail: [
      { name: 'from', type: 'Person' },
      { name: 'to', type: 'Person' },
      { name: 'contents', type: 'string' },
    ],
  },
  primaryType: 'Mail',
  domain: {
    name: 'Ether Mail',
    version: '1',
    chainId: 1,
    verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC',
  },
  message: {
    from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
    to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
    contents: 'Hello, Bob!',
  },
}
const edgeCases = [
  ['EIP-712 Mail example', mail],
  ['empty domain', { ...mail, domain: {} }],
  ['EIP712Domain as primary type', { types: {}, primaryType: 'EIP712Domain', domain: mail.domain, message: {} }],
  ['struct with no fields', { types: { Empty: [] }, primaryType: 'Empty', domain: { chainId: 1 }, message: {} }],
  [
    'nested arrays of structs',
    {
      types: {
        Root: [
          { name: 'items', type: 'Leaf[2][]' },
          { name: 'tags', type: 'string[]' },
        ],
        Leaf: [
          { name: 'v', type: 'int8' },
          { name: 'b', type: 'bytes1' },
        ],
      },
      primaryType: 'Root',
      domain: { name: 'n', salt: '0x' + '11'.repeat(32) },
      message: {
        items: [[{ v: -128n, b: '0x00' }, { v: 127n, b: '0xff' }], [{ v: 0n, b: '0x7f' }, { v: -1n, b: '0x80' }]],
        tags: ['a', '', 'ü'],
      },
    },
  ],
  [
    'struct names with underscore, digits and colon',
    {
      types: { 'Ns:Outer_1': [{ name: 'inner', type: 'Inner_2' }], Inner_2: [{ name: 'x', type: 'uint256' }] },
      primaryType: 'Ns:Outer_1',
      domain: { chainId: 8453 },
      message: { inner: { x: 2n ** 256n - 1n } },
    },
  ],
]
for (const [name, doc] of edgeCases) {
  let hash
  try {
    hash = hashTypedData(doc)
  } catch (e) {
    throw new Error(`viem rejected the edge case "${name}": ${e.shortMessage ?? e.message}`)
  }
  typedData.push({ name, typedData: JSON.parse(toJson(doc)), hash })
}

// Documents viem refuses: keyfold-chains must refuse them too.
const invalid = [
  ['bad checksum in message', (d) => { d.message.to.wallet = '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbb' }],
  ['bad checksum in domain', (d) => { d.domain.verifyingContract = '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccc' }],
  ['address without 0x', (d) => { d.message.to.wallet = 'bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' }],
  ['short address', (d) => { d.message.to.wallet = '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBB' }],
  ['unsized uint', (d) => { d.types.Mail.push({ name: 'n', type: 'uint' }); d.message.n = 1 }],
  ['uint7', (d) => { d.types.Mail.push({ name: 'n', type: 'uint7' }); d.message.n = 1 }],
  ['bytes33', (d) => { d.types.Mail.push({ name: 'n', type: 'bytes33' }); d.message.n = '0x' + '00'.repeat(33) }],
  ['bytes4 of 3 bytes', (d) => { d.types.Mail.push({ name: 'n', type: 'bytes4' }); d.message.n = '0x010203' }],
  ['uint8 out of range', (d) => { d.types.Mail.push({ name: 'n', type: 'uint8' }); d.message.n = 256 }],
  ['int8 out of range', (d) => { d.types.Mail.push({ name: 'n', type: 'int8' }); d.message.n = -129 }],
  ['undefined struct', (d) => { d.types.Mail.push({ name: 'n', type: 'Nope' }); d.message.n = {} }],
  ['struct shadowing a solidity type', (d) => { d.types.uint256 = []; }],
  ['unknown primary type', (d) => { d.primaryType = 'Letter' }],
]
const typedDataInvalid = []
for (const [name, mutate] of invalid) {
  const doc = structuredClone(mail)
  mutate(doc)
  let viemError
  try {
    hashTypedData(doc)
  } catch (e) {
    viemError = (e.shortMessage ?? e.message).split('\n')[0]
  }
  assert(viemError !== undefined, `viem accepted the invalid document "${name}"`)
  typedDataInvalid.push({ name, typedData: doc, viemError })
}

// ---------------------------------------------------------------------------------------------
// Transactions.
const CHAIN_IDS = [1, 11155111, 8453, 84532, 137, 80002, 42161, 421614, 10, 11155420, 56, 97, 43114, 43113, 31337]
function randomAccessList() {
  return Array.from({ length: randomInt(3) }, () => ({
    address: getAddress(randomHex(20)),
    storageKeys: Array.from({ length: randomInt(3) }, () => randomHex(32)),
  }))
}
function randomCommon() {
  const tx = {
    nonce: pick([0, 1, randomInt(1000), randomInt(2 ** 31)]),
    gas: pick([21000n, randomBig(24), randomBig(64)]),
    value: pick([0n, 10n ** 18n, randomBig(64), randomBig(256)]),
  }
  if (chance(0.85)) tx.to = getAddress(randomHex(20))
  if (chance(0.6)) tx.data = randomHex(pick([0, 4, 36, 68, randomInt(200)]))
  return tx
}

const transactions = []
for (let i = 0; i < 48; i++) {
  const key = randomInt(keys.length)
  const kind = ['legacy', 'eip155', 'eip2930', 'eip1559'][i % 4]
  const tx = randomCommon()
  if (kind === 'legacy') {
    tx.type = 'legacy'
    tx.gasPrice = randomBig(40)
  } else if (kind === 'eip155') {
    tx.type = 'legacy'
    tx.gasPrice = randomBig(40)
    tx.chainId = pick(CHAIN_IDS)
  } else if (kind === 'eip2930') {
    tx.type = 'eip2930'
    tx.chainId = pick(CHAIN_IDS)
    tx.gasPrice = randomBig(40)
    tx.accessList = randomAccessList()
  } else {
    tx.type = 'eip1559'
    tx.chainId = pick(CHAIN_IDS)
    tx.maxFeePerGas = randomBig(48)
    tx.maxPriorityFeePerGas = tx.maxFeePerGas === 0n ? 0n : randomBig(48) % (tx.maxFeePerGas + 1n)
    if (chance(0.5)) tx.accessList = randomAccessList()
  }
  const unsigned = serializeTransaction(tx)
  const signingHash = keccak256(unsigned)
  const sig = await sign({ hash: signingHash, privateKey: keys[key].privateKey })
  const recid = sig.yParity
  // Exactly what @dfns/lib-viem does with the API's answer.
  const signed = serializeTransaction(tx, { r: sig.r, s: sig.s, v: recid ? 28n : 27n })
  assert(signed === (await accounts[key].signTransaction(tx)), 'lib-viem re-serialization equals a local signature')
  transactions.push({
    kind,
    key,
    unsigned,
    signingHash,
    chainId: tx.chainId ?? null,
    nonce: tx.nonce,
    to: tx.to ?? null,
    value: tx.value,
    gas: tx.gas,
    signature: { r: sig.r, s: sig.s, recid, encoded: serializeSignature({ r: sig.r, s: sig.s, yParity: recid }) },
    signed,
    hash: keccak256(signed),
  })
}

// Types keyfold refuses (it must say so, not mis-hash them).
const common = { chainId: 1, nonce: 0, gas: 21000n, to: getAddress(randomHex(20)), value: 1n, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n }
const transactionsUnsupported = [
  {
    kind: 'eip4844',
    unsigned: serializeTransaction({
      ...common,
      type: 'eip4844',
      maxFeePerBlobGas: 1n,
      blobVersionedHashes: ['0x01' + '00'.repeat(31)],
    }),
  },
  {
    kind: 'eip7702',
    unsigned: serializeTransaction({
      ...common,
      type: 'eip7702',
      authorizationList: [
        { address: getAddress(randomHex(20)), chainId: 1, nonce: 0, r: randomHex(32), s: randomHex(32), yParity: 0 },
      ],
    }),
  },
]

// ---------------------------------------------------------------------------------------------
const vectors = {
  comment: 'Generated by tests/node/check.mjs with viem; do not edit. Read by tests/viem_vectors.rs.',
  viem: viemVersion,
  seed: SEED,
  keys,
  messages,
  typedData,
  typedDataInvalid,
  transactions,
  transactionsUnsupported,
}
const text = toJson(vectors)
const previous = existsSync(vectorsPath) ? readFileSync(vectorsPath, 'utf8') : null
if (args.has('--verify')) {
  if (previous !== text) {
    console.error(`${vectorsPath} differs from what viem ${viemVersion} produces: run \`node check.mjs\` and review the diff`)
    process.exit(1)
  }
  console.log(`vectors up to date (viem ${viemVersion})`)
} else {
  mkdirSync(dirname(vectorsPath), { recursive: true })
  writeFileSync(vectorsPath, text)
  console.log(
    `${previous === text ? 'unchanged' : 'wrote'} ${vectorsPath}: ${keys.length} keys, ${messages.length} messages, ` +
      `${typedData.length}+${typedDataInvalid.length} typed data, ${transactions.length}+${transactionsUnsupported.length} transactions (viem ${viemVersion})`,
  )
}

if (!args.has('--no-cargo')) {
  const run = spawnSync('cargo', ['test', '--manifest-path', join(crateDir, 'Cargo.toml'), '--test', 'viem_vectors'], {
    stdio: 'inherit',
  })
  if (run.status !== 0) {
    console.error('keyfold-chains disagrees with viem (see the cargo output above)')
    process.exit(run.status ?? 1)
  }
}
