from django.db import migrations

import integrations.fields


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='integrationconfig',
            name='api_key',
            field=integrations.fields.EncryptedCharField(blank=True, default='', max_length=1000),
        ),
        migrations.AlterField(
            model_name='integrationconfig',
            name='oauth_refresh_token',
            field=integrations.fields.EncryptedCharField(blank=True, default='', max_length=1000),
        ),
        migrations.AlterField(
            model_name='integrationconfig',
            name='webhook_secret',
            field=integrations.fields.EncryptedCharField(blank=True, default='', max_length=1000),
        ),
    ]
