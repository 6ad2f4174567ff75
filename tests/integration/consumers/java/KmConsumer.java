/*
 * The Java 17 consumer of the suite: SunPKCS11 over the module under test.
 *
 *   java -Dkmc.module=MODULE KmConsumer.java sunpkcs11.cfg PIN RSA-LABEL \
 *       EC-LABEL
 *
 * Prints "PASS name" or "FAIL name: reason" per check (the suite counts
 * them) and exits 1 if any failed.  Every result is checked by Java's own
 * software providers (SunRsaSign, SunJCE) from the certificate's public
 * key, never by the token.  The EC key must be listed with its certificate;
 * it signs nothing (no ECDSA in the mesh until issue #5).
 */

import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import javax.crypto.Cipher;

public class KmConsumer {
	interface Check {
		String run() throws Exception;
	}

	static int failed;

	static void check(String name, Check c) {
		try {
			String note = c.run();
			System.out.println("PASS " + name
			    + (note == null ? "" : " (" + note + ")"));
		} catch (Throwable e) {
			failed++;
			StringBuilder why = new StringBuilder();
			for (Throwable t = e; t != null; t = t.getCause()) {
				if (why.length() > 0) {
					why.append(" <- ");
				}
				why.append(t.getClass().getSimpleName()).append(": ")
				    .append(t.getMessage());
			}
			System.out.println("FAIL " + name + ": " + why);
		}
	}

	static void require(boolean ok, String what) throws Exception {
		if (!ok) {
			throw new Exception(what);
		}
	}

	/*
	 * One SHA256withRSA signature, verified: for the failure checks, which
	 * time the token work (login and signing), not the JVM's start-up.
	 * Prints "SIGN-OK <ms>" or "SIGN-FAIL <ms>: <reason>".
	 */
	static int signOnce(String cfg, char[] pin, String label) {
		long t0 = System.nanoTime();
		try {
			Provider p = Security.getProvider("SunPKCS11")
			    .configure(cfg);
			t0 = System.nanoTime();
			KeyStore ks = KeyStore.getInstance("PKCS11", p);
			ks.load(null, pin);
			PrivateKey k = (PrivateKey) ks.getKey(label, pin);
			Signature s = Signature.getInstance("SHA256withRSA", p);
			byte[] data = "keymesh".getBytes();
			s.initSign(k);
			s.update(data);
			byte[] sig = s.sign();
			Signature v = Signature.getInstance("SHA256withRSA",
			    "SunRsaSign");
			v.initVerify(ks.getCertificate(label).getPublicKey());
			v.update(data);
			require(v.verify(sig), "SunRsaSign rejects the signature");
			System.out.println("SIGN-OK "
			    + (System.nanoTime() - t0) / 1000000);
			return 0;
		} catch (Throwable e) {
			StringBuilder why = new StringBuilder();
			for (Throwable t = e; t != null; t = t.getCause()) {
				if (why.length() > 0) {
					why.append(" <- ");
				}
				why.append(t.getClass().getSimpleName()).append(": ")
				    .append(t.getMessage());
			}
			System.out.println("SIGN-FAIL "
			    + (System.nanoTime() - t0) / 1000000 + ": " + why);
			return 1;
		}
	}

	static PrivateKey privateKey(KeyStore ks, String label, char[] pin)
	    throws Exception {
		java.security.Key k = ks.getKey(label, pin);
		require(k instanceof PrivateKey, "no private key " + label
		    + " in the KeyStore");
		return (PrivateKey) k;
	}

	static PublicKey publicKey(KeyStore ks, String label) throws Exception {
		java.security.cert.Certificate c = ks.getCertificate(label);
		require(c != null, "no certificate " + label + " in the KeyStore");
		return c.getPublicKey();
	}

	public static void main(String[] args) throws Exception {
		String cfg = args[0];
		char[] pin = args[1].toCharArray();
		String rsaLabel = args[2];
		String ecLabel = args[3];

		if (args.length > 4 && args[4].equals("sign-once")) {
			System.exit(signOnce(cfg, pin, rsaLabel));
		}
		Provider p = Security.getProvider("SunPKCS11").configure(cfg);
		Security.addProvider(p);
		KeyStore ks = KeyStore.getInstance("PKCS11", p);
		ks.load(null, pin);

		check("java-keystore-lists-keys", () -> {
			List<String> aliases = Collections.list(ks.aliases());
			for (String a : new String[] { rsaLabel, ecLabel }) {
				require(aliases.contains(a), "no alias " + a
				    + " among " + aliases);
				require(ks.isKeyEntry(a), a + " is not a key entry");
				X509Certificate c =
				    (X509Certificate) ks.getCertificate(a);
				require(c != null, a + " has no certificate");
				require(c.getSubjectX500Principal().getName()
				    .contains("CN=" + a), a + ": subject "
				    + c.getSubjectX500Principal());
				require(ks.getKey(a, pin) instanceof PrivateKey,
				    a + " has no private key");
			}
			return "aliases " + aliases;
		});

		/*
		 * Each check looks its key up itself, so a missing key or
		 * certificate fails the checks that need it, not the others.
		 */
		byte[] data = new byte[100000];
		new java.util.Random(6).nextBytes(data);

		check("java-sha256withrsa-multipart", () -> {
			Signature s = Signature.getInstance("SHA256withRSA", p);
			s.initSign(privateKey(ks, rsaLabel, pin));
			/* three updates: C_SignUpdate x3 + C_SignFinal */
			s.update(data, 0, 1000);
			s.update(data, 1000, 50000);
			s.update(data, 51000, data.length - 51000);
			byte[] sig = s.sign();
			Signature v = Signature.getInstance("SHA256withRSA",
			    "SunRsaSign");
			v.initVerify(publicKey(ks, rsaLabel));
			v.update(data);
			require(v.verify(sig), "SunRsaSign rejects the signature");
			return sig.length + "-byte signature";
		});

		check("java-rsassa-pss", () -> {
			PSSParameterSpec spec = new PSSParameterSpec("SHA-256",
			    "MGF1", MGF1ParameterSpec.SHA256, 32, 1);
			Signature s = Signature.getInstance("RSASSA-PSS", p);
			s.setParameter(spec);
			s.initSign(privateKey(ks, rsaLabel, pin));
			s.update(data);
			byte[] sig = s.sign();
			Signature v = Signature.getInstance("RSASSA-PSS",
			    "SunRsaSign");
			v.setParameter(spec);
			v.initVerify(publicKey(ks, rsaLabel));
			v.update(data);
			require(v.verify(sig), "SunRsaSign rejects the signature");
			return null;
		});

		check("java-cipher-rsa-pkcs1-decrypt", () -> {
			byte[] plain = Arrays.copyOf(data, 48);
			Cipher e = Cipher.getInstance("RSA/ECB/PKCS1Padding",
			    "SunJCE");
			e.init(Cipher.ENCRYPT_MODE, publicKey(ks, rsaLabel));
			byte[] ct = e.doFinal(plain);
			Cipher d = Cipher.getInstance("RSA/ECB/PKCS1Padding", p);
			d.init(Cipher.DECRYPT_MODE, privateKey(ks, rsaLabel, pin));
			require(d.getProvider() == p, "decrypting with "
			    + d.getProvider().getName() + ", not the token");
			byte[] out = d.doFinal(ct);
			require(Arrays.equals(out, plain), "wrong plaintext");
			return null;
		});

		check("java-securerandom-from-token", () -> {
			SecureRandom r = SecureRandom.getInstance("PKCS11", p);
			require(r.getProvider() == p, "SecureRandom from "
			    + r.getProvider().getName());
			byte[] a = new byte[32];
			byte[] b = new byte[32];
			r.nextBytes(a);
			r.nextBytes(b);
			require(!Arrays.equals(a, new byte[32]), "all zero");
			require(!Arrays.equals(a, b), "two draws are equal");
			return null;
		});

		System.exit(failed == 0 ? 0 : 1);
	}
}
