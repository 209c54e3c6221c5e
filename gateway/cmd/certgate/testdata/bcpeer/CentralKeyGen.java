// CentralKeyGen is a CMP client built on BouncyCastle's CMP, CRMF and CMS classes. It
// requests a centrally generated key (RFC 9483 section 4.1.6) with an ir that has no
// public key and checks the response's protection. It then opens the EnvelopedData
// with BouncyCastle's recipients, verifies the key generation authority's SignedData,
// and writes the certificate and the key as PEM. In krr mode it recovers the archived key
// of a certificate instead (MAC protection only). It exists so that certgate's tests
// exercise central key generation and key recovery with an implementation other than
// certgate's.
//
//   java -cp BC_JARS:. CentralKeyGen URL mac REFERENCE SECRET_FILE CERT_OUT KEY_OUT
//   java -cp BC_JARS:. CentralKeyGen URL sig CERT_PEM KEY_PEM CERT_OUT KEY_OUT
//   java -cp BC_JARS:. CentralKeyGen URL krr REFERENCE SECRET_FILE OLD_CERT_PEM KEY_OUT
import java.io.FileReader;
import java.io.FileWriter;
import java.math.BigInteger;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Security;
import java.util.Collection;
import java.util.Date;

import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1Sequence;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.cmp.CMPObjectIdentifiers;
import org.bouncycastle.asn1.cmp.CertRepMessage;
import org.bouncycastle.asn1.crmf.CertReqMessages;
import org.bouncycastle.asn1.cmp.CertResponse;
import org.bouncycastle.asn1.cmp.CertifiedKeyPair;
import org.bouncycastle.asn1.cmp.InfoTypeAndValue;
import org.bouncycastle.asn1.cmp.KeyRecRepContent;
import org.bouncycastle.asn1.cmp.PKIStatusInfo;
import org.bouncycastle.asn1.cmp.PKIBody;
import org.bouncycastle.asn1.cmp.PKIMessage;
import org.bouncycastle.asn1.cms.CMSObjectIdentifiers;
import org.bouncycastle.asn1.cms.ContentInfo;
import org.bouncycastle.asn1.cms.EnvelopedData;
import org.bouncycastle.asn1.cms.SignedData;
import org.bouncycastle.asn1.crmf.AttributeTypeAndValue;
import org.bouncycastle.asn1.crmf.CertId;
import org.bouncycastle.asn1.crmf.CertReqMsg;
import org.bouncycastle.asn1.crmf.CertRequest;
import org.bouncycastle.asn1.crmf.CertTemplateBuilder;
import org.bouncycastle.asn1.crmf.Controls;
import org.bouncycastle.asn1.crmf.EncryptedKey;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.cmp.GeneralPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessageBuilder;
import org.bouncycastle.cert.crmf.CertificateRequestMessageBuilder;
import org.bouncycastle.cert.crmf.PKMACBuilder;
import org.bouncycastle.cert.crmf.jcajce.JcePKMACValuesCalculator;
import org.bouncycastle.cms.CMSEnvelopedData;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.RecipientInformation;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.cms.jcajce.JceKeyAgreeEnvelopedRecipient;
import org.bouncycastle.cms.jcajce.JceKeyTransEnvelopedRecipient;
import org.bouncycastle.cms.jcajce.JcePasswordEnvelopedRecipient;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;

public class CentralKeyGen {
    static final ASN1ObjectIdentifier ASYMMETRIC_KEY_PACKAGE = new ASN1ObjectIdentifier("2.16.840.1.101.2.1.2.78.5");
    static final ASN1ObjectIdentifier OLD_CERT_ID = new ASN1ObjectIdentifier("1.3.6.1.5.5.7.5.1.5");

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            throw new IllegalArgumentException("usage: CentralKeyGen URL mac|sig|krr A B C D");
        }
        Security.addProvider(new BouncyCastleProvider());
        String url = args[0];
        boolean recovery = args[1].equals("krr");
        boolean mac = args[1].equals("mac") || recovery;
        SecureRandom random = new SecureRandom();

        CertReqMessages body;
        if (recovery) {
            // A krr names the certificate whose key it recovers with the oldCertID
            // control (RFC 4211 section 6.5).
            X509CertificateHolder old;
            try (PEMParser parser = new PEMParser(new FileReader(args[4]))) {
                old = (X509CertificateHolder) parser.readObject();
            }
            CertId oldCertID = new CertId(new GeneralName(old.getIssuer()), old.getSerialNumber());
            CertRequest certRequest = new CertRequest(0, new CertTemplateBuilder().setSubject(old.getSubject()).build(),
                    new Controls(new AttributeTypeAndValue(OLD_CERT_ID, oldCertID)));
            body = new CertReqMessages(new CertReqMsg(certRequest, null, null));
        } else {
            // The template names a subject and no public key, and the request carries no
            // proof of possession: that is the request for central key generation.
            CertificateRequestMessageBuilder request = new CertificateRequestMessageBuilder(BigInteger.ZERO);
            request.setSubject(new X500Name("CN=bouncycastle central keygen"));
            body = new CertReqMessages(request.build().toASN1Structure());
        }

        byte[] transactionID = new byte[16];
        byte[] nonce = new byte[16];
        random.nextBytes(transactionID);
        random.nextBytes(nonce);
        ProtectedPKIMessageBuilder builder = new ProtectedPKIMessageBuilder(
                new GeneralName(new X500Name("CN=bouncycastle client")), new GeneralName(new X500Name("CN=certgate")))
            .setTransactionID(transactionID).setSenderNonce(nonce).setMessageTime(new Date())
            .addGeneralInfo(new InfoTypeAndValue(CMPObjectIdentifiers.it_implicitConfirm, DERNull.INSTANCE))
            .setBody(new PKIBody(recovery ? PKIBody.TYPE_KEY_RECOVERY_REQ : PKIBody.TYPE_INIT_REQ, body));

        char[] secret = null;
        X509CertificateHolder ownCert = null;
        PrivateKey ownKey = null;
        PKMACBuilder macBuilder = new PKMACBuilder(new JcePKMACValuesCalculator().setProvider("BC"));
        ProtectedPKIMessage message;
        if (mac) {
            secret = Files.readString(Path.of(args[3])).strip().toCharArray();
            builder.setSenderKID(args[2].getBytes("UTF-8"));
            message = builder.build(macBuilder.build(secret));
        } else {
            try (PEMParser certParser = new PEMParser(new FileReader(args[2]));
                 PEMParser keyParser = new PEMParser(new FileReader(args[3]))) {
                ownCert = (X509CertificateHolder) certParser.readObject();
                Object key = keyParser.readObject();
                JcaPEMKeyConverter converter = new JcaPEMKeyConverter().setProvider("BC");
                ownKey = key instanceof PEMKeyPair ? converter.getKeyPair((PEMKeyPair) key).getPrivate()
                        : converter.getPrivateKey((PrivateKeyInfo) key);
            }
            builder.setSenderKID(ownCert.getExtension(org.bouncycastle.asn1.x509.Extension.subjectKeyIdentifier) == null
                    ? new byte[0]
                    : org.bouncycastle.asn1.x509.SubjectKeyIdentifier.fromExtensions(ownCert.getExtensions()).getKeyIdentifier());
            builder.addCMPCertificate(ownCert);
            String algorithm = ownKey.getAlgorithm().equals("RSA") ? "SHA256withRSA" : "SHA256withECDSA";
            message = builder.build(new JcaContentSignerBuilder(algorithm).setProvider("BC").build(ownKey));
        }

        HttpResponse<byte[]> http = HttpClient.newHttpClient().send(
                HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/pkixcmp")
                        .POST(HttpRequest.BodyPublishers.ofByteArray(message.toASN1Structure().getEncoded())).build(),
                HttpResponse.BodyHandlers.ofByteArray());
        if (http.statusCode() != 200) {
            throw new IllegalStateException("HTTP status " + http.statusCode());
        }
        ProtectedPKIMessage response = new ProtectedPKIMessage(new GeneralPKIMessage(PKIMessage.getInstance(http.body())));
        boolean verified = response.hasPasswordBasedMacProtection()
                ? response.verify(macBuilder, secret)
                : response.verify(new JcaContentVerifierProviderBuilder().setProvider("BC").build(response.getCertificates()[0]));
        if (!verified) {
            throw new IllegalStateException("the response's protection does not verify");
        }
        int expected = recovery ? PKIBody.TYPE_KEY_RECOVERY_REP : PKIBody.TYPE_INIT_REP;
        if (response.getBody().getType() != expected) {
            throw new IllegalStateException("response body type " + response.getBody().getType() + ", want " + expected);
        }
        if (response.getHeader().getPvno().intValueExact() != 3) {
            throw new IllegalStateException("response pvno " + response.getHeader().getPvno() + ", want 3 for EnvelopedData");
        }
        PKIStatusInfo status;
        CertifiedKeyPair pair;
        if (recovery) {
            KeyRecRepContent content = KeyRecRepContent.getInstance(response.getBody().getContent());
            status = content.getStatus();
            pair = content.getKeyPairHist() == null ? null : content.getKeyPairHist()[0];
        } else {
            CertResponse answer = CertRepMessage.getInstance(response.getBody().getContent()).getResponse()[0];
            status = answer.getStatus();
            pair = answer.getCertifiedKeyPair();
        }
        if (status.getStatus().intValue() != 0) {
            throw new IllegalStateException("rejected with status " + status.getStatus() + ": " + status.getStatusString());
        }
        if (pair == null) {
            throw new IllegalStateException("the response carries no certified key pair");
        }
        X509CertificateHolder cert = new X509CertificateHolder(pair.getCertOrEncCert().getCertificate().getX509v3PKCert());
        EncryptedKey encrypted = pair.getPrivateKey();
        if (encrypted == null || encrypted.isEncryptedValue()) {
            throw new IllegalStateException("the response carries no EnvelopedData private key");
        }

        CMSEnvelopedData envelope = new CMSEnvelopedData(
                new ContentInfo(CMSObjectIdentifiers.envelopedData, EnvelopedData.getInstance(encrypted.getValue())));
        RecipientInformation recipient = envelope.getRecipientInfos().getRecipients().iterator().next();
        byte[] signed;
        if (mac) {
            signed = recipient.getContent(new JcePasswordEnvelopedRecipient(secret).setProvider("BC"));
        } else if (ownKey.getAlgorithm().equals("RSA")) {
            signed = recipient.getContent(new JceKeyTransEnvelopedRecipient(ownKey).setProvider("BC"));
        } else {
            signed = recipient.getContent(new JceKeyAgreeEnvelopedRecipient(ownKey).setProvider("BC"));
        }

        // The envelope's content type is id-signedData, and its content the SignedData
        // itself, without a ContentInfo around it.
        CMSSignedData signedData = new CMSSignedData(new ContentInfo(CMSObjectIdentifiers.signedData, SignedData.getInstance(signed)));
        if (!signedData.getSignedContentTypeOID().equals(ASYMMETRIC_KEY_PACKAGE.getId())) {
            throw new IllegalStateException("signed content type " + signedData.getSignedContentTypeOID());
        }
        SignerInformation signer = signedData.getSignerInfos().getSigners().iterator().next();
        @SuppressWarnings("unchecked")
        Collection<X509CertificateHolder> signerCerts = signedData.getCertificates().getMatches(signer.getSID());
        X509CertificateHolder kga = signerCerts.iterator().next();
        if (!signer.verify(new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(kga))) {
            throw new IllegalStateException("the key package's signature does not verify");
        }
        byte[] keyPackage = (byte[]) signedData.getSignedContent().getContent();
        PrivateKeyInfo key = PrivateKeyInfo.getInstance(ASN1Sequence.getInstance(keyPackage).getObjectAt(0));

        if (!recovery) {
            try (JcaPEMWriter out = new JcaPEMWriter(new FileWriter(args[4]))) {
                out.writeObject(cert);
            }
        }
        try (JcaPEMWriter out = new JcaPEMWriter(new FileWriter(args[5]))) {
            out.writeObject(new JcaPEMKeyConverter().setProvider("BC").getPrivateKey(key));
        }
        System.out.println("key package signed by " + kga.getSubject() + " for " + cert.getSubject());
    }
}
