//! Native Bitcoin transfers: which of the wallet's coins to spend, the fee, the change, and
//! the unsigned PSBT the wallet then signs like any other `Psbt` request.
//!
//! Coin selection is largest-first: the fewest inputs (a smaller, cheaper transaction) and no
//! search. A change output goes back to the wallet's own address when what is left after the
//! fee is worth more than dust; otherwise the remainder is added to the fee. The size each
//! input will have once signed is the `bitcoin` crate's prediction (P2WPKH with a 73-byte
//! DER signature at most, P2TR key path with a 64-byte signature), so the fee rate is met.
//!
//! Every input sequence signals replace-by-fee (BIP-125), so a transfer stuck at a low fee
//! can be bumped.

use bitcoin::absolute::LockTime;
use bitcoin::psbt::Psbt;
use bitcoin::transaction::{InputWeightPrediction, Version, predict_weight};
use bitcoin::{Address, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

use crate::Network;
use crate::error::{Error, Result};

/// The most inputs one transfer spends: what a `Psbt` request signs at most.
pub const MAX_INPUTS: usize = 64;

/// The lowest fee rate any node relays (1 sat/vB), in sat per 1000 vbytes.
pub const MIN_RELAY_SAT_PER_KVB: u64 = 1000;

/// One of the wallet's unspent outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coin {
    /// Where it is: `txid:vout`.
    pub outpoint: OutPoint,
    /// Its value in sats.
    pub value: u64,
}

/// A transfer made concrete: the unsigned PSBT and what it does.
#[derive(Debug, Clone)]
pub struct NativeTransfer {
    /// The serialized PSBT, every input with its `witness_utxo`.
    pub psbt: Vec<u8>,
    /// The spent coins, `txid:vout`.
    pub spends: Vec<String>,
    /// Inputs minus outputs, in sats.
    pub fee: u64,
    /// Back to the wallet (0: no change output).
    pub change: u64,
    /// The transaction's virtual size once signed (predicted).
    pub vsize: u64,
}

/// The `bitcoin` crate's network for a Keyfold Bitcoin network.
pub fn network_of(n: Network) -> Result<bitcoin::Network> {
    Ok(match n {
        Network::Bitcoin => bitcoin::Network::Bitcoin,
        Network::BitcoinTestnet3 => bitcoin::Network::Testnet,
        Network::BitcoinTestnet4 => bitcoin::Network::Testnet4,
        Network::BitcoinSignet => bitcoin::Network::Signet,
        other => return Err(Error::invalid(format!("{other} is not a Bitcoin network"))),
    })
}

/// An address valid on `n`, or a 400 naming `field`.
pub fn parse_address(n: Network, field: &str, s: &str) -> Result<Address> {
    let unchecked: Address<bitcoin::address::NetworkUnchecked> = s
        .parse()
        .map_err(|_| Error::invalid(format!("{field} is not a Bitcoin address")))?;
    unchecked
        .require_network(network_of(n)?)
        .map_err(|_| Error::invalid(format!("{field} is not an address on {n}")))
}

/// How a coin locked to `script` is spent, once signed.
fn input_prediction(script: &ScriptBuf) -> Result<InputWeightPrediction> {
    if script.is_p2wpkh() {
        Ok(InputWeightPrediction::P2WPKH_MAX)
    } else if script.is_p2tr() {
        Ok(InputWeightPrediction::P2TR_KEY_DEFAULT_SIGHASH)
    } else {
        Err(Error::invalid(
            "Keyfold spends from P2WPKH and P2TR wallet addresses only",
        ))
    }
}

fn fee_for(vsize: u64, sat_per_kvb: u64) -> u64 {
    vsize.saturating_mul(sat_per_kvb).div_ceil(1000)
}

/// Picks coins of `from` (largest first) to pay `amount` sats to `to` at `sat_per_kvb`, and
/// builds the unsigned PSBT. Too little money, or a payment below the dust limit, is a 400.
pub fn build_native_transfer(
    from: &Address,
    to: &Address,
    amount: u64,
    mut coins: Vec<Coin>,
    sat_per_kvb: u64,
) -> Result<NativeTransfer> {
    let rate = sat_per_kvb.max(MIN_RELAY_SAT_PER_KVB);
    let own = from.script_pubkey();
    let input = input_prediction(&own)?;
    let pay = to.script_pubkey();
    let dust = pay.minimal_non_dust().to_sat();
    if amount < dust {
        return Err(Error::invalid(format!(
            "amount is below the dust limit of this address ({dust} sats): no node relays it"
        )));
    }
    let change_dust = own.minimal_non_dust().to_sat();
    coins.sort_by(|a, b| b.value.cmp(&a.value).then(a.outpoint.cmp(&b.outpoint)));
    let vsize = |inputs: usize, outputs: &[usize]| {
        predict_weight(std::iter::repeat_n(input, inputs), outputs.iter().copied()).to_vbytes_ceil()
    };
    let mut total: u64 = 0;
    let mut chosen = 0;
    let mut outcome = None;
    for c in coins.iter().take(MAX_INPUTS) {
        total = total.saturating_add(c.value);
        chosen += 1;
        let with_change = vsize(chosen, &[pay.len(), own.len()]);
        let fee = fee_for(with_change, rate);
        if let Some(change) = total.checked_sub(amount.saturating_add(fee))
            && change >= change_dust
        {
            outcome = Some((fee, change, with_change));
            break;
        }
        let without = vsize(chosen, &[pay.len()]);
        if let Some(rest) = total.checked_sub(amount.saturating_add(fee_for(without, rate))) {
            // Less than a worthwhile change output is left: the network keeps it.
            outcome = Some((fee_for(without, rate) + rest, 0, without));
            break;
        }
    }
    let Some((fee, change, vsize)) = outcome else {
        let spendable: u64 = coins.iter().map(|c| c.value).sum();
        return Err(if coins.len() > MAX_INPUTS && spendable > amount {
            Error::invalid(format!(
                "this transfer would spend more than {MAX_INPUTS} coins; send less, or \
                 consolidate the wallet's coins first"
            ))
        } else {
            Error::invalid(format!(
                "insufficient funds: the wallet's spendable coins hold {spendable} sats and \
                 the transfer needs {amount} plus a fee of about {} sats",
                fee_for(vsize(1, &[pay.len(), own.len()]), rate)
            ))
        });
    };
    let spent = &coins[..chosen];
    let mut output = vec![TxOut {
        value: Amount::from_sat(amount),
        script_pubkey: pay,
    }];
    if change > 0 {
        output.push(TxOut {
            value: Amount::from_sat(change),
            script_pubkey: own.clone(),
        });
    }
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: spent
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output,
    };
    let mut psbt = Psbt::from_unsigned_tx(tx)
        .map_err(|e| Error::Internal(format!("building the PSBT: {e}")))?;
    for (input, c) in psbt.inputs.iter_mut().zip(spent) {
        input.witness_utxo = Some(TxOut {
            value: Amount::from_sat(c.value),
            script_pubkey: own.clone(),
        });
    }
    Ok(NativeTransfer {
        psbt: psbt.serialize(),
        spends: spent.iter().map(|c| c.outpoint.to_string()).collect(),
        fee,
        change,
        vsize,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bitcoin::hashes::Hash as _;

    fn signet(s: &str) -> Address {
        parse_address(Network::BitcoinSignet, "to", s).unwrap()
    }

    fn p2wpkh(byte: u8) -> Address {
        Address::p2wpkh(
            &bitcoin::CompressedPublicKey::from_slice(&{
                let sk = bitcoin::secp256k1::SecretKey::from_slice(&[byte; 32]).unwrap();
                bitcoin::secp256k1::PublicKey::from_secret_key(
                    &bitcoin::secp256k1::Secp256k1::new(),
                    &sk,
                )
                .serialize()
            })
            .unwrap(),
            bitcoin::KnownHrp::Testnets,
        )
    }

    fn coin(n: u8, value: u64) -> Coin {
        Coin {
            outpoint: OutPoint {
                txid: bitcoin::Txid::from_byte_array([n; 32]),
                vout: u32::from(n),
            },
            value,
        }
    }

    fn tx_of(t: &NativeTransfer) -> Psbt {
        Psbt::deserialize(&t.psbt).unwrap()
    }

    #[test]
    fn one_large_coin_pays_and_returns_change() {
        let (from, to) = (p2wpkh(1), p2wpkh(2));
        let t = build_native_transfer(
            &from,
            &to,
            50_000,
            vec![coin(1, 10_000), coin(2, 200_000)],
            2_000,
        )
        .unwrap();
        let psbt = tx_of(&t);
        let tx = &psbt.unsigned_tx;
        assert_eq!(tx.input.len(), 1, "the largest coin alone suffices");
        assert_eq!(tx.input[0].previous_output, coin(2, 0).outpoint);
        assert_eq!(tx.input[0].sequence, Sequence::ENABLE_RBF_NO_LOCKTIME);
        assert_eq!(tx.output[0].value.to_sat(), 50_000);
        assert_eq!(tx.output[0].script_pubkey, to.script_pubkey());
        assert_eq!(tx.output[1].script_pubkey, from.script_pubkey());
        assert_eq!(tx.output[1].value.to_sat(), t.change);
        // 1 P2WPKH input, 2 P2WPKH outputs: 141 vB at most once signed, 2 sat/vB.
        assert_eq!(t.vsize, 141);
        assert_eq!(t.fee, 282);
        assert_eq!(50_000 + t.change + t.fee, 200_000);
        assert_eq!(
            psbt.inputs[0].witness_utxo.as_ref().unwrap().script_pubkey,
            from.script_pubkey()
        );
        assert_eq!(t.spends, vec![coin(2, 0).outpoint.to_string()]);
    }

    #[test]
    fn a_remainder_below_dust_goes_to_the_fee() {
        let (from, to) = (p2wpkh(1), p2wpkh(2));
        // 1 input, 1 output: 110 vB at 1 sat/vB; 100 sats over is less than a change output.
        let t = build_native_transfer(&from, &to, 10_000, vec![coin(1, 10_210)], 1_000).unwrap();
        let tx = tx_of(&t).unsigned_tx;
        assert_eq!(tx.output.len(), 1);
        assert_eq!(t.change, 0);
        assert_eq!(t.fee, 210);
        assert_eq!(t.vsize, 110);
    }

    #[test]
    fn coins_are_added_largest_first_until_the_fee_is_covered() {
        let (from, to) = (p2wpkh(1), p2wpkh(2));
        let coins = vec![coin(1, 30_000), coin(2, 50_000), coin(3, 40_000)];
        let t = build_native_transfer(&from, &to, 85_000, coins, 1_000).unwrap();
        let tx = tx_of(&t).unsigned_tx;
        let spent: Vec<_> = tx.input.iter().map(|i| i.previous_output).collect();
        assert_eq!(spent, vec![coin(2, 0).outpoint, coin(3, 0).outpoint]);
        assert_eq!(85_000 + t.change + t.fee, 90_000);
    }

    #[test]
    fn taproot_wallets_spend_with_key_path_sized_inputs() {
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let sk = bitcoin::secp256k1::SecretKey::from_slice(&[4; 32]).unwrap();
        let (xonly, _) = sk.public_key(&secp).x_only_public_key();
        let from = Address::p2tr(&secp, xonly, None, bitcoin::KnownHrp::Testnets);
        let t =
            build_native_transfer(&from, &p2wpkh(2), 1_000, vec![coin(1, 100_000)], 1_000).unwrap();
        // 10.5 vB of frame, 1 key-path input (57.5 vB), a P2WPKH (31) and a P2TR (43) output.
        assert_eq!(t.vsize, 142);
        assert_eq!(
            tx_of(&t).unsigned_tx.output[1].script_pubkey,
            from.script_pubkey()
        );
    }

    #[test]
    fn too_little_money_dust_and_too_many_coins_are_bad_input() {
        let (from, to) = (p2wpkh(1), p2wpkh(2));
        let e =
            build_native_transfer(&from, &to, 10_000, vec![coin(1, 10_050)], 1_000).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("insufficient funds"),
            "{e}"
        );
        let e = build_native_transfer(&from, &to, 100, vec![coin(1, 10_000)], 1_000).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("dust"), "{e}");
        let many: Vec<Coin> = (0..100).map(|i| coin(i, 1_000)).collect();
        let e = build_native_transfer(&from, &to, 80_000, many, 1_000).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("64 coins"),
            "{e}"
        );
        let e = build_native_transfer(&from, &to, 10_000, vec![], 1_000).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
    }

    #[test]
    fn addresses_must_belong_to_the_network() {
        let a = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
        assert!(parse_address(Network::Bitcoin, "to", a).is_ok());
        let e = parse_address(Network::BitcoinSignet, "to", a).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("BitcoinSignet"),
            "{e}"
        );
        assert!(
            parse_address(Network::BitcoinSignet, "to", "nope")
                .unwrap_err()
                .is_bad_input()
        );
        let _ = signet("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx");
    }
}
